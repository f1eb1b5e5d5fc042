from django.contrib.auth import get_user_model
from django.db import transaction

from labeller.core.errors import DomainError, field_error
from labeller.tenants.access import scoped_get
from labeller.tenants.models import Membership, Organization, Role

User = get_user_model()


@transaction.atomic
def organization_create(*, slug: str, name: str, owner) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise field_error("slug", f"An organisation called {slug!r} already exists.", code="duplicate")
    organization = Organization.objects.create(slug=slug, name=name)
    Membership.objects.create(organization=organization, user=owner, role=Role.ADMIN)
    return organization


@transaction.atomic
def membership_add(*, organization: Organization, username: str, role: Role) -> Membership:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise field_error("username", f"No user called {username!r}.", code="unknown_user")
    membership, created = Membership.objects.get_or_create(organization=organization, user=user, defaults={"role": role})
    if not created:
        raise field_error("username", f"{username} is already a member.", code="duplicate")
    return membership


def _ensure_an_admin_remains(organization: Organization, leaving: Membership) -> None:
    other_admins = Membership.objects.filter(organization=organization, role=Role.ADMIN).exclude(pk=leaving.pk)
    if leaving.role == Role.ADMIN and not other_admins.exists():
        raise DomainError("An organisation needs at least one admin.", code="last_admin", http_status=409)


@transaction.atomic
def membership_update(*, organization: Organization, membership_id: int, role: Role) -> Membership:
    membership = scoped_get(Membership.objects.select_for_update(), organization, pk=membership_id)
    if role != Role.ADMIN:
        _ensure_an_admin_remains(organization, membership)
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    return membership


@transaction.atomic
def membership_remove(*, organization: Organization, membership_id: int) -> None:
    membership = scoped_get(Membership.objects.select_for_update(), organization, pk=membership_id)
    _ensure_an_admin_remains(organization, membership)
    membership.delete()
