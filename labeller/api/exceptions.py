"""One translation of domain errors into HTTP answers with readable messages."""

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeller.core.errors import DomainError
from labeller.tenants.access import NotFoundInOrganization, RoleRequired


def exception_handler(exc, context):
    if isinstance(exc, NotFoundInOrganization):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, RoleRequired):
        exc = exceptions.PermissionDenied(str(exc))
    elif isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, DomainError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.http_status)
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent, RequestDataTooBig)):
        # Django's own limits on form bodies, raised while DRF parses; left alone they become
        # Django's HTML 400 page instead of the API's JSON.
        too_large = isinstance(exc, RequestDataTooBig)
        return Response(
            {"detail": f"The request body is not valid: {exc}", "code": "too_large" if too_large else "parse_error"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if too_large else status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, OverflowError):
        # SQLite's driver cannot bind an integer past 64 bits (PostgreSQL just finds no row), so an
        # id like 2**70 in a body or filter is the client's error, not the server's.
        return Response(
            {"detail": "A number in the request is too large.", "code": "out_of_range"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, exceptions.ParseError):
        return Response(
            {"detail": f"The request body is not valid: {exc.detail}", "code": "parse_error"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return drf_exception_handler(exc, context)
