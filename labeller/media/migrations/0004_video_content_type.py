"""Record each video's content type, derived from its container, and give stored files
the matching suffix.

Older uploads kept the uploader's suffix (``poc.html``), which storages, nginx and
browsers use to guess a type. Each stored video is opened with FFmpeg (header only);
a file FFmpeg cannot read becomes ``application/octet-stream`` / ``.bin``. A renamed
file is copied under its new name first and the old one deleted only after the
migration commits, so a failed run loses nothing.
"""

from pathlib import PurePosixPath

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import migrations, models, transaction

from labeller.media.video import container_format_name, stored_format


def _container_name(storage, name: str) -> str | None:
    try:
        return container_format_name(storage.path(name))
    except NotImplementedError:  # object storage: read through the storage
        with storage.open(name, "rb") as handle:
            return container_format_name(handle)


def fill_content_types(apps, schema_editor):
    Video = apps.get_model("media", "Video")
    storage = default_storage
    replaced: list[str] = []
    for video in Video.objects.exclude(file="").only("id", "file", "codec").iterator():
        name = video.file.name
        if not storage.exists(name):
            Video.objects.filter(pk=video.pk).update(content_type="application/octet-stream")
            continue
        derived = stored_format(_container_name(storage, name) or "", video.codec)
        changes = {"content_type": derived.content_type}
        if PurePosixPath(name).suffix.lower() != derived.suffix:
            with storage.open(name, "rb") as handle:
                changes["file"] = storage.save(str(PurePosixPath(name).with_suffix(derived.suffix)), File(handle))
            replaced.append(name)
        Video.objects.filter(pk=video.pk).update(**changes)
    transaction.on_commit(
        lambda: [storage.delete(name) for name in replaced], using=schema_editor.connection.alias
    )


class Migration(migrations.Migration):

    dependencies = [
        ("media", "0003_upload"),
    ]

    operations = [
        migrations.AddField(
            model_name="video",
            name="content_type",
            field=models.CharField(default="application/octet-stream", max_length=64),
        ),
        migrations.RunPython(fill_content_types, migrations.RunPython.noop),
    ]
