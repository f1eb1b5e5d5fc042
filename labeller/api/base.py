"""The base of every tenant API view: resolves the organisation once and checks the role.

Each view derives from ``OrganizationAPIView`` and states, per HTTP method, the least
role it needs. Handlers receive ``self.organization`` and ``self.membership`` and read
tenant data only through ``labeller.tenants.access.scoped``. A test walks the URL
resolver and fails on any tenant route whose view does not derive from this class.
"""

from __future__ import annotations

from typing import ClassVar

from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeller.api.pagination import IdCursorPagination
from labeller.core.concurrency import StaleVersionError
from labeller.tenants.access import membership_resolve, role_check
from labeller.tenants.models import Role

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OrganizationAPIView(APIView):
    # The least role per method; reads default to any member, writes to admins.
    read_role: ClassVar[Role] = Role.ANNOTATOR
    write_role: ClassVar[Role] = Role.ADMIN
    # Serializer used to show the current state in a 409 answer.
    conflict_serializer_class = None
    # How ``paginated`` pages a list; the schema documents every list GET as such a page, so a
    # view whose GET answers a whole list sets None.
    pagination_class = IdCursorPagination

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)  # authentication, IsAuthenticated, throttles
        self.membership = membership_resolve(request.user, kwargs["org"])
        self.organization = self.membership.organization
        role_check(self.membership, self.read_role if request.method in READ_METHODS else self.write_role)

    def handle_exception(self, exc):
        if isinstance(exc, StaleVersionError) and self.conflict_serializer_class is not None:
            return Response(
                {
                    "detail": str(exc),
                    "code": "stale_version",
                    "current": self.conflict_serializer_class(exc.current, context=self.get_serializer_context()).data,
                },
                status=status.HTTP_409_CONFLICT,
            )
        return super().handle_exception(exc)

    def get_serializer_context(self) -> dict:
        return {"request": self.request, "organization": getattr(self, "organization", None), "view": self}

    def validated(self, serializer_class, data=None, context: dict | None = None, **kwargs) -> dict:
        """``context`` adds to the usual one what the serializer checks against (the frame of a box)."""
        context = {**self.get_serializer_context(), **(context or {})}
        serializer = serializer_class(data=self.request.data if data is None else data, context=context, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def filtered(self, filterset_class, queryset):
        """Apply query-string filters; an invalid value is a 400 that names the filter."""
        filterset = filterset_class(self.request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs

    def paginated(self, queryset, serializer_class) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(
            serializer_class(page, many=True, context=self.get_serializer_context()).data
        )

    def respond(self, instance, serializer_class, http_status: int = status.HTTP_200_OK) -> Response:
        return Response(serializer_class(instance, context=self.get_serializer_context()).data, status=http_status)
