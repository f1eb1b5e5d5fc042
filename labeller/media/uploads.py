"""Resumable uploads: a client sends a file in ordered chunks and can resume after a drop."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeller.core.errors import DomainError
from labeller.media.ingest import video_create_from_file
from labeller.media.models import Upload, UploadStatus, Video
from labeller.projects.models import Project

ABANDONED_AFTER = timedelta(days=2)
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
COPY_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in HTTP
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(header: str | None) -> ByteRange:
    match = CONTENT_RANGE.match(header or "")
    if not match:
        raise DomainError("Send each chunk with a header 'Content-Range: bytes START-END/TOTAL'.", code="bad_range")
    start, end, total = map(int, match.groups())
    if end < start or end >= total:
        raise DomainError(f"The range {start}-{end}/{total} is not a valid byte range.", code="bad_range")
    return ByteRange(start, end, total)


def upload_part_path(upload: Upload) -> Path:
    settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    return settings.UPLOAD_DIR / f"upload-{upload.pk}.part"


def upload_start(*, project: Project, actor, filename: str, total_bytes: int) -> Upload:
    limit = settings.LABELLER["MAX_UPLOAD_BYTES"]
    if total_bytes > limit:
        raise DomainError(
            f"The file is {total_bytes:,} bytes; the limit is {limit:,} bytes.", code="too_large", http_status=413
        )
    upload = Upload.objects.create(project=project, created_by=actor, filename=filename[:255], total_bytes=total_bytes)
    upload_part_path(upload).touch()
    return upload


def upload_append(*, upload: Upload, byte_range: ByteRange, body: BinaryIO) -> Upload:
    """Append one chunk. A chunk that does not start where the file ends answers 409 with the
    offset to resume from, so a client that lost track never corrupts the file."""
    if byte_range.length > settings.LABELLER["UPLOAD_CHUNK_MAX_BYTES"]:
        raise DomainError(
            f"Chunks may be at most {settings.LABELLER['UPLOAD_CHUNK_MAX_BYTES']:,} bytes.", code="chunk_too_large", http_status=413
        )
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.status != UploadStatus.OPEN:
            raise DomainError("This upload is already complete.", code="upload_complete", http_status=409)
        if byte_range.total != upload.total_bytes:
            raise DomainError(f"This upload is {upload.total_bytes} bytes long, not {byte_range.total}.", code="bad_range")
        if byte_range.start != upload.received_bytes:
            raise DomainError(
                f"Resume from byte {upload.received_bytes}.", code="wrong_offset", http_status=409,
                extra={"offset": upload.received_bytes},
            )
        path = upload_part_path(upload)
        written = 0
        with path.open("r+b") as part:
            part.seek(upload.received_bytes)
            while written < byte_range.length:
                piece = body.read(min(COPY_BUFFER, byte_range.length - written))
                if not piece:
                    break
                part.write(piece)
                written += len(piece)
            if written != byte_range.length:
                # A dropped connection: drop the partial chunk, so the offset stays on a
                # chunk boundary the client knows.
                part.truncate(upload.received_bytes)
        if written != byte_range.length:
            raise DomainError(
                f"The chunk ended after {written} of {byte_range.length} bytes; resend it.", code="short_chunk",
                extra={"offset": upload.received_bytes},
            )
        upload.received_bytes += written
        upload.save(update_fields=["received_bytes", "updated_at"])
    return upload


def upload_finish(*, upload: Upload, actor) -> Video:
    with transaction.atomic():
        upload = Upload.objects.select_for_update().select_related("project").get(pk=upload.pk)
        if upload.status == UploadStatus.COMPLETE and upload.video_id:
            return upload.video  # finishing twice is harmless
        if upload.received_bytes != upload.total_bytes:
            raise DomainError(
                f"Only {upload.received_bytes:,} of {upload.total_bytes:,} bytes arrived; send the rest first.",
                code="incomplete", http_status=409, extra={"offset": upload.received_bytes},
            )
        path = upload_part_path(upload)
        try:
            video = video_create_from_file(project=upload.project, actor=actor, path=path, original_name=upload.filename)
        except DomainError as error:
            refused = error
        else:
            upload.status, upload.video = UploadStatus.COMPLETE, video
            upload.save(update_fields=["status", "video", "updated_at"])
            transaction.on_commit(lambda: path.unlink(missing_ok=True))
            return video
    # Refused content keeps nothing: the upload and its bytes go (outside the transaction,
    # so the delete is not rolled back with the error).
    Upload.objects.filter(pk=upload.pk).delete()
    path.unlink(missing_ok=True)
    raise refused


def uploads_delete_abandoned(*, older_than: timedelta = ABANDONED_AFTER) -> int:
    """Open uploads untouched for ``older_than`` go, with their bytes (run by beat)."""
    stale = Upload.objects.filter(status=UploadStatus.OPEN, updated_at__lt=timezone.now() - older_than)
    count = 0
    for upload in stale:
        upload_part_path(upload).unlink(missing_ok=True)
        upload.delete()
        count += 1
    return count
