"""Reads of organisations and their members, always from the organisation's scope."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from labeller.annotations.selectors import MemberActivity, member_activity
from labeller.tenants.access import scoped
from labeller.tenants.models import Membership, Organization


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return scoped(Membership, organization).select_related("user")


@dataclass(frozen=True)
class MemberActivityRow:
    membership_id: int
    username: str
    activity: MemberActivity


def member_activity_list(*, organization: Organization, days: int) -> list[MemberActivityRow]:
    memberships = list(membership_list(organization=organization).order_by("user__username"))
    activity = member_activity(organization=organization, user_ids=[m.user_id for m in memberships], days=days)
    return [MemberActivityRow(m.pk, m.user.username, activity[m.user_id]) for m in memberships]
