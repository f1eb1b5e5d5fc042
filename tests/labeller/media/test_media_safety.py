"""Uploaded media can never become a page of ours: stored names and content types come
from the probed content, and every media response is typed, nosniff and sandboxed."""

import importlib
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from labeller.media.files import safe_download_name, serve_stored
from labeller.media.models import Video
from labeller.media.video import StoredFormat, stored_format
from tests.conftest import api_path
from tests.factories import FrameFactory, VideoFactory

pytestmark = pytest.mark.django_db

SCRIPT = b"<script>alert(document.cookie)</script>"
MEDIA_CSP = "sandbox; default-src 'none'"


def write_mp4(path: Path, frames: int = 10) -> Path:
    """A tiny real MP4 (MPEG-4 part 2, which every FFmpeg build encodes)."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            image = np.full((48, 64, 3), index * 20, dtype=np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        output.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def mp4_with_script(tmp_path_factory) -> Path:
    """A real MP4 with an HTML payload appended: what a browser sniffing it as a page would run."""
    path = write_mp4(tmp_path_factory.mktemp("videos") / "clip.mp4")
    path.write_bytes(path.read_bytes() + SCRIPT)
    return path


def upload(tenant, path: Path, name: str):
    # Declared as a web page too: neither the name nor the declared type may matter.
    file = SimpleUploadedFile(name, path.read_bytes(), content_type="text/html")
    return tenant.client("admin").post(
        api_path(tenant, f"projects/{tenant.project.pk}/videos/"), {"file": file}, format="multipart"
    )


def assert_media_headers(response):
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == MEDIA_CSP


@pytest.mark.parametrize("name", ["poc.html", "x.svg", "x.js", "x.xhtml"], ids=["html", "svg", "js", "xhtml"])
def test_a_video_named_like_a_page_is_stored_and_served_as_mp4(tenant, mp4_with_script, name):
    # Given a real MP4 with a script appended, named like a document
    response = upload(tenant, mp4_with_script, name)
    assert response.status_code == 201, response.content

    # Then it is stored under the container's suffix, with the container's type...
    video = Video.objects.get(pk=response.json()["id"])
    assert video.original_name == name
    assert video.file.name.endswith(".mp4")
    assert video.content_type == "video/mp4"

    # ...and downloaded as an MP4 attachment the browser may not sniff or run.
    download = tenant.client("annotator").get(api_path(tenant, f"videos/{video.pk}/file"))
    assert download.status_code == 200
    assert download["Content-Type"] == "video/mp4"
    assert download["Content-Disposition"] == f'attachment; filename="{Path(name).stem}.mp4"'
    assert_media_headers(download)
    assert b"".join(download.streaming_content) == mp4_with_script.read_bytes()


def test_a_video_of_unknown_type_is_an_octet_stream_attachment(tenant):
    video = VideoFactory(project=tenant.project, original_name="notes.html")  # content_type left at its default
    download = tenant.client("annotator").get(api_path(tenant, f"videos/{video.pk}/file"))
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment;")
    assert_media_headers(download)


@pytest.mark.parametrize("route", ["image", "thumbnail"])
def test_frames_are_inline_jpegs_with_the_media_headers(tenant, route):
    frame = FrameFactory(project=tenant.project)
    response = tenant.client("annotator").get(api_path(tenant, f"frames/{frame.pk}/{route}"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith("inline")
    assert_media_headers(response)


@pytest.mark.parametrize(
    ("container", "codec", "expected"),
    [
        pytest.param("mov,mp4,m4a,3gp,3g2,mj2", "h264", StoredFormat("video/mp4", ".mp4"), id="mp4"),
        pytest.param("matroska,webm", "vp8", StoredFormat("video/webm", ".webm"), id="webm-vp8"),
        pytest.param("matroska,webm", "libdav1d", StoredFormat("video/webm", ".webm"), id="webm-av1"),
        pytest.param("matroska,webm", "h264", StoredFormat("video/x-matroska", ".mkv"), id="mkv-h264"),
        pytest.param("avi", "mpeg4", StoredFormat("video/x-msvideo", ".avi"), id="avi"),
        pytest.param("flv", "flv1", StoredFormat("application/octet-stream", ".bin"), id="other"),
    ],
)
def test_the_stored_format_follows_the_container_and_codec(container, codec, expected):
    assert stored_format(container, codec) == expected


@pytest.mark.parametrize(
    ("original", "suffix", "expected"),
    [
        ("poc.html", ".mp4", "poc.mp4"),
        ('a"b;c\r\nd.mov', ".mp4", "a_b_c_d.mp4"),
        ("Café été.mkv", ".mkv", "Cafe_ete.mkv"),
        ("../../etc/passwd", ".bin", "passwd.bin"),
        ("视频.mp4", ".mp4", "file.mp4"),
    ],
)
def test_download_names_are_plain_ascii_with_the_stored_suffix(original, suffix, expected):
    assert safe_download_name(original, suffix=suffix) == expected


def test_behind_nginx_the_type_and_disposition_go_with_the_accel_redirect(tenant, settings):
    settings.LABELLER = {**settings.LABELLER, "X_ACCEL_MEDIA_PREFIX": "/protected/"}
    video = VideoFactory(project=tenant.project, content_type="video/mp4", original_name="poc.html")
    response = tenant.client("annotator").get(api_path(tenant, f"videos/{video.pk}/file"))
    assert response["X-Accel-Redirect"] == "/protected/" + video.file.name
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"] == 'attachment; filename="poc.mp4"'
    assert_media_headers(response)


class SignedUrlStorage:
    """Object storage as the view sees it: no local path, a signing url()."""

    def path(self, name):
        raise NotImplementedError

    def url(self, name, parameters=None, expire=None, http_method=None):
        return "https://bucket.example/" + name + "?" + "&".join(f"{k}={v}" for k, v in (parameters or {}).items())


def test_object_storage_urls_pin_the_response_type_and_disposition():
    response = serve_stored(SignedUrlStorage(), "videos/abc.mp4", content_type="video/mp4", download_name="poc.mp4")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["ResponseContentType"] == ["video/mp4"]
    assert query["ResponseContentDisposition"] == ['attachment; filename="poc.mp4"']


def test_the_migration_types_and_renames_stored_videos(tenant, mp4_with_script, django_capture_on_commit_callbacks):
    # Given videos stored before content types existed: one under the uploader's suffix,
    # one whose file is gone
    stored = ContentFile(mp4_with_script.read_bytes(), name="a.html")
    video = VideoFactory(project=tenant.project, codec="mpeg4", file=stored)
    lost = VideoFactory(project=tenant.project, file=ContentFile(b"x", name="b.html"))
    default_storage.delete(lost.file.name)
    old_name = video.file.name
    migration = importlib.import_module("labeller.media.migrations.0004_video_content_type")

    with django_capture_on_commit_callbacks(execute=True):
        migration.fill_content_types(apps, SimpleNamespace(connection=SimpleNamespace(alias="default")))

    video.refresh_from_db()
    assert video.content_type == "video/mp4"
    assert video.file.name == old_name.removesuffix(".html") + ".mp4"
    assert default_storage.exists(video.file.name) and not default_storage.exists(old_name)
    assert Video.objects.get(pk=lost.pk).content_type == "application/octet-stream"


def test_pages_carry_a_strict_content_security_policy(client):
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"


def test_the_api_docs_load_swagger_ui_from_our_own_static_files(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn." not in html and "<script>" not in html  # no CDN, no inline script
    policy = page["Content-Security-Policy"]
    assert "script-src 'self';" in policy + ";" and "'unsafe-inline'" in policy.split("style-src")[1].split(";")[0]
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
