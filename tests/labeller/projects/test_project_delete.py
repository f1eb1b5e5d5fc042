"""Deleting a project in use: every row of it, and every file it stored, go."""

import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeller.annotations.models import Annotation, AnnotationEvent, Label
from labeller.media.models import Frame, Upload, Video
from labeller.projects.models import Project
from labeller.training.models import EmbeddingReport, ProjectIndex
from tests.conftest import api_path
from tests.factories import FrameFactory, ProjectFactory
from tests.pipeline import ingest_synthetic, label_and_learn, make_synthetic, stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("delete"), seconds=3, n_shots=2, seed=5, objects_per_shot=1)


def rows_of(project_id: int) -> dict[str, int]:
    """Rows of every model that points at the project, by model."""
    counts = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if getattr(field, "many_to_one", False) or getattr(field, "one_to_one", False):
                if field.concrete and field.related_model is Project:
                    counts[model._meta.label] = model.objects.filter(**{field.name: project_id}).count()
    return counts


def test_deleting_a_project_in_use_removes_its_rows_and_files(tenant, synthetic, django_capture_on_commit_callbacks):
    project = tenant.project
    prefix = f"orgs/{tenant.organization.pk}/projects/{project.pk}/"
    video = ingest_synthetic(project, tenant.admin, synthetic)
    label_and_learn(video, tenant.annotator, synthetic)
    default_storage.save(prefix + "reports/embeddings-fp.png", ContentFile(b"png"))
    EmbeddingReport.objects.create(project=project, crop_count=4, label_count=2, rows=[], grid=prefix + "reports/x.png")
    upload = tenant.client("admin").post(
        api_path(tenant, f"projects/{project.pk}/uploads/"), {"filename": "more.mp4", "size": 100}, format="json"
    )
    assert upload.status_code == 201, upload.content
    part = settings.UPLOAD_DIR / f"upload-{upload.json()['id']}.part"
    # Another project of the organisation keeps its files.
    neighbour = FrameFactory(project=ProjectFactory(organization=tenant.organization))

    before = stored_files()
    for folder in ("videos/", f"videos/{video.pk}/run-", "candidates/", "index/", "reports/"):
        assert any(name.startswith(prefix + folder) for name in before), f"the setup stored nothing in {folder}"
    assert Annotation.objects.filter(project=project, label__isnull=False).exists() and part.exists()
    assert ProjectIndex.objects.filter(project=project).exists()

    with django_capture_on_commit_callbacks(execute=True):  # files go once the rows are committed
        response = tenant.client("admin").delete(api_path(tenant, f"projects/{project.pk}"))

    assert response.status_code == 204, response.content
    assert {model: count for model, count in rows_of(project.pk).items() if count} == {}
    assert not Video.objects.filter(pk=video.pk).exists() and not Frame.objects.filter(video_id=video.pk).exists()
    assert not Label.objects.filter(project_id=project.pk).exists()
    assert not AnnotationEvent.objects.filter(project_id=project.pk).exists()
    assert not Upload.objects.filter(project_id=project.pk).exists()
    assert not part.exists()
    assert [name for name in stored_files() if name.startswith(prefix)] == []
    media = settings.MEDIA_ROOT / prefix
    assert not media.exists(), sorted(str(p) for p in media.rglob("*"))
    assert {neighbour.image.name, neighbour.thumbnail.name} <= stored_files()


def test_only_admins_delete_projects(tenant):
    for role in ("annotator", "reviewer"):
        assert tenant.client(role).delete(api_path(tenant, f"projects/{tenant.project.pk}")).status_code == 403
    assert Project.objects.filter(pk=tenant.project.pk).exists()
