from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from labeller.annotations.models import Annotation
from labeller.core.concurrency import save_if_version
from labeller.core.errors import DomainError, field_error
from labeller.media.models import Upload
from labeller.media.storage import project_storage_prefix, storage_delete_files
from labeller.media.uploads import upload_part_path
from labeller.projects.models import Project
from labeller.tenants.models import Organization

EDITABLE_FIELDS = (
    "name",
    "description",
    "keyframes_min_per_shot",
    "keyframes_max_per_shot",
    "every_nth_frame",
    "jpeg_quality",
)


def _check_keyframe_bounds(minimum: int, maximum: int) -> None:
    if minimum > maximum:
        raise field_error("keyframes_min_per_shot", f"must not exceed keyframes_max_per_shot ({maximum}).")


@transaction.atomic
def project_create(*, organization: Organization, name: str, **settings) -> Project:
    project = Project(organization=organization, name=name, **settings)
    _check_keyframe_bounds(project.keyframes_min_per_shot, project.keyframes_max_per_shot)
    project.full_clean(exclude=["organization"])
    try:
        project.save()
    except IntegrityError as exc:
        raise field_error("name", f"A project called {name!r} already exists.", code="duplicate") from exc
    return project


@transaction.atomic
def project_update(*, project: Project, expected_version: int, **changes) -> Project:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise DomainError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    _check_keyframe_bounds(
        changes.get("keyframes_min_per_shot", project.keyframes_min_per_shot),
        changes.get("keyframes_max_per_shot", project.keyframes_max_per_shot),
    )
    if "name" in changes and Project.objects.filter(organization=project.organization_id, name=changes["name"]).exclude(pk=project.pk).exists():
        raise field_error("name", f"A project called {changes['name']!r} already exists.", code="duplicate")
    return save_if_version(project, expected_version=expected_version, fields=changes)


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete the project with every row of it; once that is committed, every file it stored.

    Boxes go first: Annotation.label is PROTECT (deleting a label must never take confirmed
    work with it), and Django refuses a cascade that reaches a protected row even when that
    row would be deleted by the same cascade. The files are the project's whole storage
    prefix (labeller.media.storage) and the bytes of its resumable uploads.
    """
    prefix = project_storage_prefix(organization_id=project.organization_id, project_id=project.pk)
    upload_paths = [upload_part_path(upload) for upload in Upload.objects.filter(project=project)]
    Annotation.objects.filter(project=project).delete()
    project.delete()
    transaction.on_commit(lambda: storage_delete_files(default_storage, trees=[prefix], local_paths=upload_paths))
