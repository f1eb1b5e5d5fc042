"""Invitations: the only way someone else's account joins an organisation.

An admin invites an email address with a role; the link (a random token, single use,
expiring) is mailed through the configured EMAIL_BACKEND and shown to the admin once, so
it also works without mail. Whoever holds the link accepts it while logged in, or creates
an account through it; only then do they become a member. Nothing here tells the admin
whether an address or a username already has an account on the site.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from labeller.core.errors import DomainError, field_error
from labeller.tenants.access import scoped, scoped_get
from labeller.tenants.models import Invitation, Membership, Organization, Role
from labeller.tenants.services import user_create

logger = logging.getLogger(__name__)


class InvitationState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


def invitation_state(invitation: Invitation) -> str:
    if invitation.accepted_at is not None:
        return InvitationState.ACCEPTED
    if invitation.revoked_at is not None:
        return InvitationState.REVOKED
    if invitation.expires_at <= timezone.now():
        return InvitationState.EXPIRED
    return InvitationState.PENDING


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    url: str  # the only time the link exists outside the mail: only its hash is stored
    mailed: bool


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _pending(queryset):
    return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


def invitation_create(
    *, organization: Organization, email: str, role: Role, invited_by, url_for: Callable[[str], str]
) -> IssuedInvitation:
    """Invite ``email``; a pending invitation to the same address is replaced by this one.

    ``url_for(token)`` builds the absolute link. The mail goes after the commit; a mail
    server that refuses it leaves the invitation valid (the admin has the link).
    """
    email = email.strip().lower()
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        already = Membership.objects.filter(organization=organization, user__email__iexact=email, is_active=True)
        if already.exists():
            raise field_error("email", f"{email} is already a member of this organisation.", code="already_member")
        _pending(Invitation.objects.select_for_update().filter(organization=organization, email=email)).update(
            revoked_at=timezone.now()
        )
        invitation = Invitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            token_hash=_token_hash(token),
            invited_by=invited_by,
            expires_at=timezone.now() + settings.INVITATION_LIFETIME,
        )
    url = url_for(token)
    return IssuedInvitation(invitation=invitation, url=url, mailed=_mail(invitation, url))


def _mail(invitation: Invitation, url: str) -> bool:
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "An admin"
    days = settings.INVITATION_LIFETIME.days
    role = invitation.get_role_display().lower()
    try:
        send_mail(
            subject=f"Join {invitation.organization.name} on Labeller",
            message=(
                f"{inviter} invites you to label with {invitation.organization.name} as {role}.\n\n"
                f"Accept (or create your account) here, within {days} days:\n{url}\n\n"
                "If you did not expect this, ignore this mail: nothing happens until the link is used."
            ),
            from_email=None,
            recipient_list=[invitation.email],
        )
    except Exception:  # any mail failure: the admin still has the link
        logger.exception("Could not mail invitation %s", invitation.pk)
        return False
    return True


def invitation_list(*, organization: Organization):
    return _pending(scoped(Invitation, organization)).select_related("invited_by")


def invitation_revoke(*, organization: Organization, invitation_id: int) -> None:
    with transaction.atomic():
        invitation = scoped_get(Invitation.objects.select_for_update(), organization, pk=invitation_id)
        if invitation_state(invitation) != InvitationState.PENDING:
            raise DomainError("This invitation is no longer pending.", code="invitation_used", http_status=409)
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at", "updated_at"])


def invitation_get(*, token: str, for_update: bool = False) -> Invitation:
    """The invitation a link names; unknown, used, revoked and expired links are all refused."""
    queryset = Invitation.objects.select_related("organization", "invited_by")
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    invitation = queryset.filter(token_hash=_token_hash(token)).first()
    if invitation is None:
        raise DomainError("This invitation link is not valid.", code="invitation_invalid", http_status=404)
    state = invitation_state(invitation)
    if state != InvitationState.PENDING:
        words = {
            InvitationState.ACCEPTED: "has already been used",
            InvitationState.REVOKED: "was withdrawn",
            InvitationState.EXPIRED: "has expired",
        }[state]
        raise DomainError(
            f"This invitation {words}; ask an admin of the organisation for a new one.",
            code=f"invitation_{state}",
            http_status=410,
        )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user) -> Membership:
    """``user`` joins with the invited role. The row lock makes the link single-use even
    when it is opened twice at once."""
    invitation = invitation_get(token=token, for_update=True)
    membership = Membership.objects.select_for_update().filter(organization=invitation.organization, user=user).first()
    if membership is not None and membership.is_active:
        raise DomainError(
            f"You are already a member of {invitation.organization.name}.", code="already_member", http_status=409
        )
    if membership is None:
        membership = Membership.objects.create(organization=invitation.organization, user=user, role=invitation.role)
    else:  # a deactivated member invited back
        membership.role, membership.is_active = invitation.role, True
        membership.save(update_fields=["role", "is_active", "updated_at"])
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    return membership


@transaction.atomic
def invitation_accept_with_new_account(*, token: str, username: str, password: str) -> Membership:
    """Create an account through the link and accept it, in one transaction: a refused
    invitation leaves no account behind."""
    invitation = invitation_get(token=token, for_update=True)
    user = user_create(username=username, password=password, email=invitation.email)
    return invitation_accept(token=token, user=user)
