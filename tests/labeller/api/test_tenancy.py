"""Tenancy is enforced in one place; these tests walk every registered API route."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import F, ForeignKey
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from labeller.annotations.models import ImportJob, ImportKind
from labeller.api.base import OrganizationAPIView
from labeller.exports.models import DatasetExport, ExportState
from labeller.media.models import Upload
from labeller.media.storage import project_storage_prefix
from labeller.media.uploads import upload_part_path
from labeller.tenants.models import Invitation
from labeller.training.models import EmbeddingReport, RunState, TrainingRun
from tests.conftest import client_for, make_tenant
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory, ShotFactory, VideoFactory

TENANT_PREFIX = "api/v1/orgs/<slug:org>/"
WRITE_BODIES = {
    "post": {"box": [1, 1, 5, 5], "version": 1, "name": "x.y", "username": "nobody", "role": "admin"},
    "patch": {"version": 1, "role": "admin", "box": [1, 1, 5, 5], "name": "renamed", "color": "#000000"},
}


def tenant_routes():
    """(route name, full pattern, view class) for every route under the tenant prefix."""
    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern) and (prefix + str(entry.pattern)).startswith(TENANT_PREFIX):
                found.append((entry.name, prefix + str(entry.pattern), entry.callback.view_class))

    walk(get_resolver().url_patterns, "")
    return found


ROUTES = tenant_routes()


def test_the_walk_finds_the_routes():
    names = {name for name, _, _ in ROUTES}
    assert {"project-list", "annotation-detail", "frame-image", "queue-next", "member-list"} <= names


@pytest.mark.parametrize("name,pattern,view_class", ROUTES, ids=[r[0] for r in ROUTES])
def test_every_tenant_route_derives_from_the_one_base_class(name, pattern, view_class):
    assert issubclass(view_class, OrganizationAPIView), f"{name} ({pattern}) bypasses OrganizationAPIView"


def bodies_naming(ids: dict) -> dict:
    """Request bodies whose every id names the given objects (another tenant's, in the tenancy walk)."""
    named = {
        "label_id": ids["label"],
        "frame_id": ids["frame"],
        "project_id": ids["project"],
        "video_id": ids["video"],
        "shot_id": ids["shot"],
        "video_ids": [ids["video"]],
        "shot_ids": [ids["shot"]],
        "label_ids": [ids["label"]],
        "parent": ids["label"],
        "parent_id": ids["label"],
        "into_id": ids["label"],
        "boxes": [
            {"action": "create", "box": [1, 1, 5, 5], "label_id": ids["label"]},
            {"action": "update", "id": ids["annotation"], "version": 1, "box": [1, 1, 6, 6]},
            {"action": "confirm", "id": ids["annotation"], "version": 1, "label_id": ids["label"]},
        ],
    }
    return {method: {**body, **named} for method, body in WRITE_BODIES.items()}


TENANT_APPS = {"tenants", "projects", "media", "annotations", "exports", "training", "authtoken"}


def stored_files() -> list[tuple[str, int]]:
    """Every stored file (media and resumable uploads) with its size."""
    found = []
    for root in (Path(settings.MEDIA_ROOT), Path(settings.UPLOAD_DIR)):
        if root.exists():
            files = (path for path in root.rglob("*") if path.is_file())
            found += sorted((str(path.relative_to(root.parent)), path.stat().st_size) for path in files)
    return found


def tenant_state_digest() -> str:
    """A digest of every row of every app model and of every stored file: equal digests mean nothing changed."""
    rows = []
    for model in apps.get_models():
        if model._meta.app_label in TENANT_APPS:
            rows.append((model._meta.label, list(model.objects.order_by("pk").values_list())))
    return hashlib.sha256(json.dumps([rows, stored_files()], default=str).encode()).hexdigest()


def cross_tenant_references() -> list[str]:
    """Rows whose foreign key points into another organisation: none may ever exist."""
    found = []
    for model in apps.get_models():
        path = getattr(model, "ORGANIZATION_PATH", None)
        if model._meta.app_label not in TENANT_APPS or path is None:
            continue
        for field in model._meta.concrete_fields:
            related_path = getattr(field.related_model, "ORGANIZATION_PATH", None)
            if not isinstance(field, ForeignKey) or related_path is None:
                continue
            crossing = model.objects.exclude(**{f"{field.name}__isnull": True}).exclude(
                **{f"{field.name}__{related_path}": F(path)}
            )
            found += [f"{model._meta.label} {pk} -> {field.name}" for pk in crossing.values_list("pk", flat=True)]
    return found


def store_file(project, name: str, content: bytes = b"stored bytes") -> str:
    prefix = project_storage_prefix(organization_id=project.organization_id, project_id=project.pk)
    return default_storage.save(prefix + name, ContentFile(content))


def victim_objects(victim):
    video = VideoFactory(project=victim.project)
    shot = ShotFactory(video=video)
    frame = FrameFactory(project=victim.project, video=video, shot=shot)
    label = LabelFactory(project=victim.project, name=f"food.secret-{victim.organization.slug}")
    annotation = AnnotationFactory(frame=frame, label=label, author=victim.annotator)
    membership = victim.organization.memberships.first()
    invitation = Invitation.objects.create(
        organization=victim.organization,
        email="friend@example.com",
        token_hash=f"hash-of-{victim.organization.slug}",
        expires_at=timezone.now() + timedelta(days=1),
    )
    upload = Upload.objects.create(project=victim.project, filename="clip.mp4", total_bytes=10)
    upload_part_path(upload).write_bytes(b"0123")
    grid = store_file(victim.project, "reports/grid.png")
    report = EmbeddingReport.objects.create(project=victim.project, crop_count=4, label_count=2, rows=[], grid=grid)
    export_file = store_file(victim.project, "exports/x.json", b'{"images": []}')
    export = DatasetExport.objects.create(
        project=victim.project, state=ExportState.DONE, file=export_file, content_type="application/json"
    )
    archive = store_file(victim.project, "imports/x.zip", b"PK")
    import_job = ImportJob.objects.create(
        project=victim.project, kind=ImportKind.IMAGES, archive_name="x.zip", archive=archive
    )
    artifact = store_file(victim.project, "models/x.pt")
    run = TrainingRun.objects.create(project=victim.project, number=1, state=RunState.SUCCEEDED, artifact=artifact)
    return {
        "import": import_job.pk,
        "training_run": run.pk,
        "export": export.pk,
        "embedding_report": report.pk,
        "upload": upload.pk,
        "project": victim.project.pk,
        "label": label.pk,
        "video": video.pk,
        "shot": shot.pk,
        "frame": frame.pk,
        "annotation": annotation.pk,
        "member": membership.pk,
        "invitation": invitation.pk,
    }


def build_path(name: str, pattern: str, org_slug: str, ids: dict) -> str:
    kind = name.split("-")[0]
    path = "/" + pattern.replace("<slug:org>", org_slug)
    path = path.replace("<int:project_id>", str(ids["project"])).replace("<int:frame_id>", str(ids["frame"]))
    if "<int:pk>" in path:
        key = {"organization": "project", "queue": "project"}.get(kind, kind)
        path = path.replace("<int:pk>", str(ids[key]))
    assert "<" not in path, f"unfilled parameter in {path}"
    return path


def methods_of(view_class):
    return [m for m in ("get", "post", "patch", "put", "delete") if hasattr(view_class, m)]


@pytest.mark.django_db
@pytest.mark.parametrize("name,pattern,view_class", ROUTES, ids=[r[0] for r in ROUTES])
def test_a_member_of_another_organisation_gets_404_and_changes_nothing(name, pattern, view_class):
    victim = make_tenant("victim")
    intruder = make_tenant("intruder")
    ids = victim_objects(victim)
    client = client_for(intruder.admin)  # the most powerful role elsewhere
    before = tenant_state_digest()
    for method in methods_of(view_class):
        # Both ways in: the victim's organisation in the URL, and the intruder's own
        # organisation with the victim's object ids.
        for org_slug in ("victim", "intruder"):
            path = build_path(name, pattern, org_slug, ids)
            if org_slug == "intruder" and "<int:" not in pattern:
                continue  # no victim id in the URL: the intruder's own data, theirs to use
            response = getattr(client, method)(path, bodies_naming(ids).get(method), format="json")
            assert response.status_code == 404, f"{method.upper()} {path} answered {response.status_code}"
    assert tenant_state_digest() == before


@pytest.mark.django_db
@pytest.mark.parametrize("name,pattern,view_class", ROUTES, ids=[r[0] for r in ROUTES])
def test_the_victims_ids_in_a_body_sent_to_your_own_organisation_reach_nothing(name, pattern, view_class):
    victim = make_tenant("victim")
    intruder = make_tenant("intruder")
    victim_ids = victim_objects(victim)
    own_ids = victim_objects(intruder)
    client = client_for(intruder.admin)
    victim_files = [f for f in stored_files() if f"orgs/{victim.organization.pk}/" in f[0]]
    before = organization_digest(victim.organization)
    for method in methods_of(view_class):
        if method in ("get", "delete"):
            continue  # no body
        path = build_path(name, pattern, "intruder", own_ids)
        response = getattr(client, method)(path, bodies_naming(victim_ids).get(method), format="json")
        assert response.status_code < 500, f"{method.upper()} {path} answered {response.status_code}"
        assert b"food.secret-victim" not in response.content
    assert organization_digest(victim.organization) == before
    assert [f for f in stored_files() if f"orgs/{victim.organization.pk}/" in f[0]] == victim_files
    assert cross_tenant_references() == []


def organization_digest(organization) -> str:
    """A digest of the rows of one organisation."""
    rows = []
    for model in apps.get_models():
        if model._meta.app_label in TENANT_APPS and hasattr(model, "ORGANIZATION_PATH"):
            queryset = model.objects.filter(**{model.ORGANIZATION_PATH: organization}).order_by("pk")
            rows.append((model._meta.label, list(queryset.values_list())))
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()


@pytest.mark.django_db
@pytest.mark.parametrize("name,pattern,view_class", ROUTES, ids=[r[0] for r in ROUTES])
def test_anonymous_callers_are_refused(name, pattern, view_class):
    victim = make_tenant("victim")
    ids = victim_objects(victim)
    before = tenant_state_digest()
    for method in methods_of(view_class):
        path = build_path(name, pattern, "victim", ids)
        response = getattr(client_for(None), method)(path, WRITE_BODIES.get(method), format="json")
        assert response.status_code in (401, 403), f"{method.upper()} {path} answered {response.status_code}"
    assert tenant_state_digest() == before


@pytest.mark.django_db
def test_lists_show_only_the_callers_organisation():
    victim = make_tenant("victim")
    intruder = make_tenant("intruder")
    victim_objects(victim)
    client = client_for(intruder.admin)
    projects = client.get("/api/v1/orgs/intruder/projects/").json()["results"]
    assert [p["id"] for p in projects] == [intruder.project.pk]
    members = client.get("/api/v1/orgs/intruder/members/").json()["results"]
    assert {m["username"] for m in members} == {"intruder-admin", "intruder-reviewer", "intruder-annotator"}
    me = client.get("/api/v1/me").json()
    assert [o["slug"] for o in me["organizations"]] == ["intruder"]
