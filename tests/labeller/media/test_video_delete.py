"""Deleting a video: its rows go, and so do its files (the video, its frames and thumbnails,
its ingest work folder, the candidates cached for its frames); the rest of the project stays."""

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeller.annotations.models import Annotation
from labeller.media.models import Frame, Shot, Video
from tests.conftest import api_path
from tests.factories import FrameFactory
from tests.pipeline import ingest_synthetic, label_and_learn, make_synthetic, stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("delete-video"), seconds=3, n_shots=2, seed=5, objects_per_shot=1)


def test_deleting_a_video_removes_its_rows_and_every_file_of_it(tenant, synthetic, django_capture_on_commit_callbacks):
    project = tenant.project
    prefix = f"orgs/{tenant.organization.pk}/projects/{project.pk}/"
    video = ingest_synthetic(project, tenant.admin, synthetic)
    label_and_learn(video, tenant.annotator, synthetic)
    frame_ids = list(Frame.objects.filter(video=video).values_list("pk", flat=True))
    still = FrameFactory(project=project)  # an image of the same project, with its own cached candidates
    kept_candidates = default_storage.save(f"{prefix}candidates/{still.pk}-0123456789ab.npz", ContentFile(b"npz"))

    before = stored_files()
    work = f"{prefix}videos/{video.pk}/"
    of_video = {name for name in before if name.startswith(work) or name == video.file.name}
    of_video |= {name for name in before for pk in frame_ids if name.startswith(f"{prefix}candidates/{pk}-")}
    assert any(name.endswith("scan.json") for name in of_video) and any("/candidates/" in name for name in of_video)

    with django_capture_on_commit_callbacks(execute=True):  # files go once the rows are committed
        response = tenant.client("admin").delete(api_path(tenant, f"videos/{video.pk}"))

    assert response.status_code == 204, response.content
    assert not Video.objects.filter(pk=video.pk).exists()
    assert not Frame.objects.filter(pk__in=frame_ids).exists() and not Shot.objects.filter(video_id=video.pk).exists()
    assert not Annotation.objects.filter(frame_id__in=frame_ids).exists()
    after = stored_files()
    assert of_video & after == set()
    assert after == before - of_video  # nothing else of the project went: index, the image, its candidates
    assert {kept_candidates, still.image.name, still.thumbnail.name} <= after
    assert any(name.startswith(f"{prefix}index/") for name in after)
    assert not (settings.MEDIA_ROOT / work).exists()  # the emptied work folder too
