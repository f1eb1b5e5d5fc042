"""Request body parsers with limits: a body past the size limit answers 413, JSON nested too deep 400.

Django checks ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when ``request.body`` or ``request.POST`` is
read; DRF's parsers read the stream directly, so without these a body of any size was parsed,
stored and served back to every member. Multipart bodies keep DRF's parser: Django's multipart
parser applies the same limit to non-file fields and streams files to disk.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from labeller.core.errors import DomainError

# API inputs are a box in an object, a label, a project: a few levels. Far deeper is an attack
# on the parser (Python's json recurses per level) or on whatever walks the data afterwards.
JSON_MAX_DEPTH = 32


def read_limited(stream, parser_context: dict | None) -> bytes:
    """The whole body, refusing one larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` before holding it all."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    request = (parser_context or {}).get("request")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
    except ValueError:
        declared = 0
    if declared > limit:
        raise _too_large(limit)
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> DomainError:
    return DomainError(
        f"The request body is larger than {limit:,} bytes. Send files as multipart uploads; "
        "text fields have their own, much smaller limits.",
        code="too_large",
        http_status=413,
    )


def _nested_deeper_than(data, limit: int) -> bool:
    """Whether lists and objects in ``data`` nest more than ``limit`` levels (iterative: no recursion)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = read_limited(stream, parser_context)
        too_deep = ParseError(f"JSON nested more than {JSON_MAX_DEPTH} levels deep.")
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if _nested_deeper_than(data, JSON_MAX_DEPTH):
            raise too_deep
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        return QueryDict(read_limited(stream, parser_context), encoding=encoding)
