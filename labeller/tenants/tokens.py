"""Script tokens: DRF's one token per user, with a lifetime and a way to revoke it.

A token older than ``settings.API_TOKEN_LIFETIME`` no longer authenticates; asking for a
token then issues a fresh one. Revoking deletes it, so the next request with it is a 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token


@dataclass(frozen=True)
class ApiToken:
    key: str
    created: datetime
    expires: datetime


def api_token_expires(token: Token) -> datetime:
    return token.created + settings.API_TOKEN_LIFETIME


def api_token_is_expired(token: Token) -> bool:
    return timezone.now() >= api_token_expires(token)


def _described(token: Token) -> ApiToken:
    return ApiToken(key=token.key, created=token.created, expires=api_token_expires(token))


def api_token_get(*, user) -> ApiToken | None:
    """The caller's live token, or None when there is none or it has expired."""
    token = Token.objects.filter(user=user).first()
    if token is None or api_token_is_expired(token):
        return None
    return _described(token)


@transaction.atomic
def api_token_issue(*, user) -> ApiToken:
    """The caller's live token, created (or replaced, when expired) if needed."""
    token = Token.objects.select_for_update().filter(user=user).first()
    if token is not None and api_token_is_expired(token):
        token.delete()
        token = None
    if token is None:
        token, _ = Token.objects.get_or_create(user=user)
    return _described(token)


def api_token_revoke(*, user) -> bool:
    """Delete the caller's token; True when there was one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)
