"""Serving stored media only after the caller's tenancy check (never a public URL)."""

from urllib.parse import quote

from django.conf import settings
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect

# Frame URLs carry the frame version, so the bytes behind one URL never change.
CACHE_CONTROL = "private, max-age=86400"


def serve_stored_file(field_file: FieldFile, *, content_type: str | None = None) -> HttpResponse:
    if not field_file:
        raise Http404("No file.")
    storage = field_file.storage
    accel_prefix = settings.LABELLER.get("X_ACCEL_MEDIA_PREFIX")
    try:
        path = storage.path(field_file.name)
    except NotImplementedError:
        # Object storage: hand out a short-lived signed URL instead of proxying the bytes.
        return HttpResponseRedirect(storage.url(field_file.name))
    if accel_prefix:
        response = HttpResponse(content_type=content_type or "")
        response["X-Accel-Redirect"] = accel_prefix.rstrip("/") + "/" + quote(field_file.name)
    else:
        try:
            response = FileResponse(open(path, "rb"), content_type=content_type)
        except FileNotFoundError as exc:
            raise Http404("The file is missing from storage.") from exc
    response["Cache-Control"] = CACHE_CONTROL
    return response
