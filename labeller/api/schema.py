"""The OpenAPI schema as the API answers: pages, error statuses and their bodies.

drf-spectacular documents a plain ``APIView`` from its ``@extend_schema`` alone, so what
every tenant route shares is added here once: list GETs answer a cursor page
(``{next, previous, results}``, see ``OrganizationAPIView.paginated``), and each operation
lists the errors it can answer (401/403 when it needs a login, 404 when its path names
something, 400 and 413 when it takes input, 429 from the throttles).
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR_SCHEMA = {
    "type": "object",
    "description": "A refusal: `detail` says why, `code` names the kind when there is one.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
    "additionalProperties": True,
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Invalid input: each key names a field (or `detail`, `code` for the whole request).",
    "additionalProperties": True,
}
ERROR_DESCRIPTIONS = {
    "400": "Invalid input (the body, a filter or the cursor); the message names the field.",
    "401": "Not logged in, or the token is unknown, expired or revoked.",
    "403": "The caller's role in this organisation is below what the route needs.",
    "404": "Missing, or not in the caller's organisation (the same answer).",
    "409": "Conflicts with the current state (a stale `version`, a complete frame, a finished run); "
    "`code` names the conflict and `current` shows the object as it is now where there is one.",
    "413": "The request body is too large.",
    "415": "The request body's content type is not one this route takes.",
    "429": "Too many requests; retry after the time in `Retry-After`.",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BODY_METHODS = WRITE_METHODS - {"DELETE"}


class LabellerAutoSchema(AutoSchema):
    def _get_paginator(self):
        # Only a list read is paged; a POST that answers a list (image upload) answers it whole.
        if self.method != "GET":
            return None
        return super()._get_paginator()

    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        # A read-only field whose default is None answers null when the attribute is missing.
        defaults_to_null = getattr(field, "read_only", False) and getattr(field, "default", ...) is None
        if direction == "response" and (defaults_to_null or _passes_through_a_nullable_relation(field)):
            meta["nullable"] = True
        return meta

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        # A stored file served as JSON (an export) is documented as ``bytes``; under a JSON media
        # type that would mean "the body is one JSON string", so say "any JSON document" instead.
        for media_type, content in (response.get("content") or {}).items():
            if media_type.endswith("json") and content.get("schema") == {"type": "string", "format": "binary"}:
                content["schema"] = {"description": "The stored file's own JSON document."}
        return response

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                schema = VALIDATION_ERROR_SCHEMA if code == "400" else ERROR_SCHEMA
                name = "ValidationError" if code == "400" else "Error"
                component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name)
                self.registry.register_on_missing(component)
                responses[code] = {
                    "content": {"application/json": {"schema": component.ref}},
                    "description": ERROR_DESCRIPTIONS[code],
                }
        return responses

    def _error_codes(self) -> list[str]:
        codes = []
        takes_input = self.method in BODY_METHODS or any(p.get("in") == "query" for p in self._get_parameters())
        if takes_input:
            codes.append("400")
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method in WRITE_METHODS and "{" in self.path:
            codes.append("409")  # a write to something that exists can meet it in another state
        if self.method in BODY_METHODS:
            codes += ["413", "415"]
        codes.append("429")
        return codes


def _passes_through_a_nullable_relation(field) -> bool:
    """``source="completed_by.username"`` reads null when ``completed_by`` is null; DRF does not say so."""
    attrs = getattr(field, "source_attrs", None) or []
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    if model is None or len(attrs) < 2 or not isinstance(parent, serializers.ModelSerializer):
        return False
    for attr in attrs[:-1]:
        try:
            relation = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return False
        if relation.null:
            return True
        model = relation.related_model
        if model is None:
            return False
    return False
