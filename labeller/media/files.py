"""Serving stored media only after the caller's tenancy check (never a public URL)."""

from urllib.parse import quote

import numpy as np
from PIL import Image

from django.conf import settings
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect

# Frame URLs carry the frame version, so the bytes behind one URL never change.
CACHE_CONTROL = "private, max-age=86400"


def serve_stored_file(field_file: FieldFile, *, content_type: str | None = None) -> HttpResponse:
    if not field_file:
        raise Http404("No file.")
    return serve_stored(field_file.storage, field_file.name, content_type=content_type)


def serve_stored(storage, name: str, *, content_type: str | None = None) -> HttpResponse:
    accel_prefix = settings.LABELLER.get("X_ACCEL_MEDIA_PREFIX")
    try:
        path = storage.path(name)
    except NotImplementedError:
        # Object storage: hand out a short-lived signed URL instead of proxying the bytes.
        return HttpResponseRedirect(storage.url(name))
    if accel_prefix:
        response = HttpResponse(content_type=content_type or "")
        response["X-Accel-Redirect"] = accel_prefix.rstrip("/") + "/" + quote(name)
    else:
        try:
            response = FileResponse(open(path, "rb"), content_type=content_type)
        except FileNotFoundError as exc:
            raise Http404("The file is missing from storage.") from exc
    response["Cache-Control"] = CACHE_CONTROL
    return response


def read_frame_rgb(frame) -> np.ndarray:
    """The frame's stored JPEG decoded as uint8 [H, W, 3] RGB."""
    with frame.image.open("rb") as handle, Image.open(handle) as image:
        return np.array(image.convert("RGB"))
