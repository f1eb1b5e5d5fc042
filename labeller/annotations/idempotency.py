"""Idempotency keys for annotation writes: a retried request gets the first answer again.

A client that lost the answer to a create (the connection broke after the server committed)
sends the same request with the same ``Idempotency-Key``; instead of a second box it gets the
answer the first request produced. The same key with a different request is refused (422).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from labeller.annotations.models import IdempotencyKey
from labeller.core.errors import DomainError
from labeller.media.models import Frame

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A retry comes within minutes; keys older than this are forgotten (a later reuse is new work).
KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool


def request_fingerprint(*, method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_check(key: str) -> str:
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isascii() or not key.isprintable():
        raise DomainError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID, say).",
            code="invalid_idempotency_key",
        )
    return key


@transaction.atomic
def idempotent_answer(
    *, user, key: str, frame: Frame, fingerprint: str, produce: Callable[[], tuple[int, Any]]
) -> Answer:
    """Run ``produce`` (the write, returning status and JSON body) once per ``(user, key)``.

    ``produce`` runs in this transaction: if it raises, the key is not kept and a retry runs
    it afresh. A concurrent request with the same key blocks on the unique constraint until
    this one commits, then replays its answer.
    """
    IdempotencyKey.objects.filter(user=user, created_at__lt=timezone.now() - KEY_LIFETIME).delete()
    try:
        with transaction.atomic():
            record = IdempotencyKey.objects.create(
                project_id=frame.project_id, frame=frame, user=user, key=key, fingerprint=fingerprint
            )
    except IntegrityError:
        record = IdempotencyKey.objects.select_for_update().get(user=user, key=key)
        if record.fingerprint != fingerprint:
            raise DomainError(
                f"This {HEADER} was already used for a different request: send a new key for new work.",
                code="idempotency_key_reused",
                http_status=422,
            ) from None
        return Answer(status=record.response_status, body=record.response_body, replayed=True)
    status, body = produce()
    record.response_status, record.response_body = status, body
    record.save(update_fields=["response_status", "response_body", "updated_at"])
    return Answer(status=status, body=body, replayed=False)
