import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile


@contextmanager
def local_upload_path(uploaded: UploadedFile) -> Iterator[Path]:
    """A path to the uploaded bytes on disk: Django's own temporary file for large uploads
    (never read into memory), or a small temporary copy for ones kept in memory."""
    if hasattr(uploaded, "temporary_file_path"):
        yield Path(uploaded.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(suffix=Path(uploaded.name or "").suffix) as copy:
        for chunk in uploaded.chunks():
            copy.write(chunk)
        copy.flush()
        yield Path(copy.name)
