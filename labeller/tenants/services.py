"""Writes to organisations and memberships.

People join an organisation only by accepting an invitation (``labeller.tenants.invitations``)
or by an admin creating their account here; nobody is added to an organisation by name.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeller.core.errors import DomainError, field_error
from labeller.media.models import Frame, FrameStatus
from labeller.tenants.access import scoped_get
from labeller.tenants.models import Membership, Organization, Role

User = get_user_model()

UNCHANGED = object()


@transaction.atomic
def organization_create(*, slug: str, name: str, owner) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise field_error("slug", f"An organisation called {slug!r} already exists.", code="duplicate")
    organization = Organization.objects.create(slug=slug, name=name)
    Membership.objects.create(organization=organization, user=owner, role=Role.ADMIN)
    return organization


def password_check(password: str, *, user=None, field: str = "password") -> None:
    """Django's configured password validators, as a 400 naming ``field``."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise field_error(field, " ".join(exc.messages), code="weak_password") from None


def user_create(*, username: str, password: str, email: str = ""):
    """A new site account. A taken username is refused as any sign-up form refuses it."""
    username = username.strip()
    candidate = User(username=username, email=email)
    try:
        candidate.full_clean(exclude=["password"], validate_unique=False)
    except ValidationError as exc:
        raise field_error("username", " ".join(exc.message_dict.get("username", exc.messages))) from None
    password_check(password, user=candidate)
    taken = DomainError(
        "username: This username cannot be used; choose another.",
        code="username_unavailable",
        extra={"errors": {"username": ["This username cannot be used; choose another."]}},
    )
    if User.objects.filter(username__iexact=username).exists():
        raise taken
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError:
        raise taken from None


@transaction.atomic
def member_account_create(
    *, organization: Organization, username: str, password: str, role: Role, email: str = ""
) -> Membership:
    """An admin creates a new account that starts as a member (no invitation to accept)."""
    user = user_create(username=username, password=password, email=email)
    return Membership.objects.create(organization=organization, user=user, role=role)


def _lock_admins(organization: Organization) -> list[Membership]:
    """Lock the organisation's active admin memberships, in id order.

    Every change that could leave no admin takes these locks first, so two admins demoting
    or removing each other at the same moment run one after the other, and the second sees
    the first one's change (PostgreSQL re-reads a locked row once its holder commits).
    """
    return list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Role.ADMIN, is_active=True)
        .order_by("pk")
    )


def _ensure_an_admin_remains(admins: list[Membership], leaving: Membership) -> None:
    """Caller holds ``_lock_admins``; ``leaving`` stops being an active admin."""
    if leaving.pk in {admin.pk for admin in admins} and len(admins) == 1:
        raise DomainError("An organisation needs at least one admin.", code="last_admin", http_status=409)


def _release_held_frames(organization: Organization, user) -> None:
    """A deactivated member's held frames go back to the queue for the others."""
    held = Frame.objects.filter(project__organization=organization, assigned_to=user)
    held.filter(status=FrameStatus.IN_PROGRESS).update(assigned_to=None, assigned_at=None, status=FrameStatus.NEW)
    held.update(assigned_to=None, assigned_at=None)


@transaction.atomic
def membership_update(
    *, organization: Organization, membership_id: int, role: Role | None = None, is_active: bool | None = None
) -> Membership:
    """Change a member's role and/or (de)activate them; the last active admin stays one."""
    admins = _lock_admins(organization)
    membership = scoped_get(
        Membership.objects.select_for_update().select_related("user"), organization, pk=membership_id
    )
    stays_admin = (role or Role(membership.role)) == Role.ADMIN and (
        membership.is_active if is_active is None else is_active
    )
    if not stays_admin:
        _ensure_an_admin_remains(admins, membership)
    fields = ["updated_at"]
    if role is not None:
        membership.role = role
        fields.append("role")
    if is_active is not None:
        if membership.is_active and not is_active:
            _release_held_frames(organization, membership.user)
        membership.is_active = is_active
        fields.append("is_active")
    membership.save(update_fields=fields)
    return membership


@transaction.atomic
def membership_remove(*, organization: Organization, membership_id: int) -> None:
    admins = _lock_admins(organization)
    membership = scoped_get(
        Membership.objects.select_for_update().select_related("user"), organization, pk=membership_id
    )
    _ensure_an_admin_remains(admins, membership)
    _release_held_frames(organization, membership.user)
    membership.delete()
