"""Tenancy, in one place.

Every tenant model declares ``ORGANIZATION_PATH``, the lookup from the row to its
organisation. ``scoped`` is the only way code reads tenant rows: a query that starts
from it cannot see another organisation's data. ``membership_resolve`` is the only way
a request becomes an organisation: a user who is not a member (or a deactivated one) gets
the same answer as for an organisation that does not exist.
"""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from labeller.tenants.models import Membership, Organization, Role

M = TypeVar("M", bound=models.Model)


class NotFoundInOrganization(Exception):
    """Missing and not yours are the same answer, so ids of other tenants leak nothing."""


class RoleRequired(Exception):
    def __init__(self, required: Role):
        super().__init__(f"This needs the {required.label.lower()} role in this organisation.")
        self.required = required


def scoped(model_or_queryset: type[M] | models.QuerySet[M], organization: Organization) -> models.QuerySet[M]:
    """Rows of ``organization`` only; the start of every read of tenant data."""
    queryset = (
        model_or_queryset
        if isinstance(model_or_queryset, models.QuerySet)
        else model_or_queryset._default_manager.all()
    )
    path = queryset.model.ORGANIZATION_PATH
    return queryset.filter(**{path: organization})


def scoped_get(model_or_queryset: type[M] | models.QuerySet[M], organization: Organization, **lookup) -> M:
    try:
        return scoped(model_or_queryset, organization).get(**lookup)
    except (models.ObjectDoesNotExist, ValueError, TypeError) as exc:
        raise NotFoundInOrganization(str(exc)) from exc


def membership_resolve(user: AbstractBaseUser | AnonymousUser, organization_slug: str) -> Membership:
    if not user.is_authenticated:
        raise NotFoundInOrganization(organization_slug)
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=organization_slug, is_active=True)
        .first()
    )
    if membership is None:
        raise NotFoundInOrganization(organization_slug)
    return membership


def role_check(membership: Membership, required: Role) -> None:
    if not membership.has_role(required):
        raise RoleRequired(required)
