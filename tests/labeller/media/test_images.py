"""Still images through the API: single files, several at once, or a zip; bad content is
refused whole, naming the file, and leaves no row and no file behind."""

import io
import stat
import struct
import zipfile
import zlib

import numpy as np
import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from PIL import Image, ImageCms, PngImagePlugin

from labeller.annotations.models import ImportJob
from labeller.media.models import Frame
from tests.conftest import api_path, client_for, make_tenant
from tests.factories import jpeg_bytes
from tests.import_jobs import run_import
from tests.pipeline import stored_files

pytestmark = pytest.mark.django_db

EXIF_ORIENTATION = 0x0112
ROTATED_90_CLOCKWISE = 6  # stored landscape, shown portrait


def noisy_jpeg(width: int = 320, height: int = 240, **save_options) -> bytes:
    """A photo-like JPEG (noise, so truncating it cuts into real pixel data)."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **save_options)
    return buffer.getvalue()


def rotated_jpeg() -> bytes:
    """Stored 60x20 with its left third red; EXIF says: turn it 90 degrees clockwise to show it."""
    image = Image.new("RGB", (60, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CLOCKWISE
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge canvas (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def zip_of(*members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """Members are (name or ZipInfo, bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def damaged_zip(name: str, data: bytes) -> bytes:
    """A zip whose member's bytes no longer match its CRC (a flipped byte in transit)."""
    archive = bytearray(zip_of((name, data), compression=zipfile.ZIP_STORED))
    archive[archive.index(data) + len(data) // 2] ^= 0xFF
    return bytes(archive)


def upload(tenant, role="admin", **fields):
    path = api_path(tenant, f"projects/{tenant.project.pk}/images/")
    return tenant.client(role).post(path, fields, format="multipart")


def image_file(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def stored_image(frame: Frame) -> Image.Image:
    with default_storage.open(frame.image.name, "rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


def test_a_single_image_becomes_a_still_frame(tenant):
    response = upload(tenant, files=image_file("kitchen.jpg", noisy_jpeg(320, 240)))

    assert response.status_code == 201, response.content
    [body] = response.json()
    frame = Frame.objects.get(pk=body["id"])
    assert (frame.video, frame.index, frame.is_keyframe, frame.original_name) == (None, 0, True, "kitchen.jpg")
    assert (frame.width, frame.height) == (body["width"], body["height"]) == (320, 240)
    assert stored_image(frame).format == "JPEG"
    with default_storage.open(frame.thumbnail.name, "rb") as handle:
        assert Image.open(handle).size == (256, 192)
    assert tenant.client("annotator").get(body["image_url"]).status_code == 200


def test_several_images_in_one_request_keep_their_order_and_names(tenant):
    png = io.BytesIO()
    Image.new("RGB", (30, 50), (0, 128, 0)).save(png, format="PNG")

    files = [
        image_file("a.jpg", jpeg_bytes(64, 48)),
        image_file("b.png", png.getvalue()),
        image_file("c.jpg", jpeg_bytes(8, 8)),
    ]

    response = upload(tenant, files=files)

    assert response.status_code == 201, response.content
    assert [(f["original_name"], f["width"], f["height"]) for f in response.json()] == [
        ("a.jpg", 64, 48),
        ("b.png", 30, 50),
        ("c.jpg", 8, 8),
    ]
    assert Frame.objects.filter(project=tenant.project, video=None).count() == 3


def test_an_exif_rotated_photo_is_stored_upright_without_its_metadata(tenant):
    response = upload(tenant, files=image_file("portrait.jpg", rotated_jpeg()))

    assert response.status_code == 201, response.content
    frame = Frame.objects.get(pk=response.json()[0]["id"])
    assert (frame.width, frame.height) == (20, 60)
    image = stored_image(frame)
    assert image.size == (20, 60)
    assert EXIF_ORIENTATION not in image.getexif()
    # Turned clockwise, the red left third of the stored pixels is now on top.
    assert image.getpixel((10, 5))[0] > 200 and image.getpixel((10, 55))[2] > 200


def test_a_jpeg_is_kept_as_it_came_and_other_formats_use_the_projects_jpeg_quality(tenant):
    source = noisy_jpeg(200, 200, quality=95)
    bitmap = io.BytesIO()
    Image.open(io.BytesIO(source)).save(bitmap, format="BMP")
    tenant.project.jpeg_quality = 30
    tenant.project.save()

    frames = upload(tenant, files=[image_file("a.jpg", source), image_file("b.bmp", bitmap.getvalue())]).json()
    kept, encoded = (Frame.objects.get(pk=frame["id"]) for frame in frames)

    with kept.image.open("rb") as handle:
        assert handle.read() == source
    assert stored_image(encoded).format == "JPEG" and encoded.image.size < len(source) / 2


GPS_IFD = 0x8825
EXIF_MAKE = 0x010F


def photo(image_format: str = "JPEG", **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 100, 0)).save(buffer, format=image_format, **save_options)
    return buffer.getvalue()


def gps_exif() -> Image.Exif:
    """Where and with what a phone took the photo."""
    exif = Image.Exif()
    exif[EXIF_MAKE] = "PhoneMaker"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    return exif


def png_text(keyword: str, text: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(keyword, text)
    return info


def png_with_late_text() -> bytes:
    """A text chunk after the pixel data, which Pillow does not see until it decodes them."""
    plain = photo("PNG")
    data = b"Author\0Jane Doe, 12 Rue Example"
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    end = plain.rindex(b"IEND") - 4
    return plain[:end] + chunk + plain[end:]


def test_a_photo_with_a_gps_position_is_stored_without_it(tenant):
    source = photo(exif=gps_exif())
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(GPS_IFD)  # there to be lost

    response = upload(tenant, files=image_file("holiday.jpg", source))

    assert response.status_code == 201, response.content
    stored = stored_image(Frame.objects.get(pk=response.json()[0]["id"]))
    assert not stored.getexif().get_ifd(GPS_IFD) and not stored.getexif()
    assert "exif" not in stored.info and [marker for marker, _ in stored.applist] == ["APP0"]


@pytest.mark.parametrize(
    "name, source",
    [
        pytest.param("a.jpg", photo(xmp=b"<x:xmpmeta><dc:creator>Jane Doe</dc:creator></x:xmpmeta>"), id="jpeg-xmp"),
        pytest.param("a.jpg", photo(comment=b"taken at 12 Rue Example"), id="jpeg-comment"),
        pytest.param("a.jpg", photo() + b"trailer a phone appended", id="jpeg-bytes-after-the-picture"),
        pytest.param("a.png", photo("PNG", exif=gps_exif()), id="png-exif"),
        pytest.param("a.png", photo("PNG", pnginfo=png_text("Author", "Jane Doe")), id="png-text"),
        pytest.param("a.png", png_with_late_text(), id="png-text-after-the-pixels"),
    ],
)
def test_a_file_with_metadata_is_re_encoded_without_it(tenant, name, source):
    response = upload(tenant, files=image_file(name, source))

    assert response.status_code == 201, response.content
    frame = Frame.objects.get(pk=response.json()[0]["id"])
    with frame.image.open("rb") as handle:
        stored_bytes = handle.read()
    assert stored_bytes != source and b"Jane Doe" not in stored_bytes and b"Example" not in stored_bytes
    stored = stored_image(frame)
    assert stored.format == "JPEG" and [marker for marker, _ in stored.applist] == ["APP0"]
    assert (stored.width, stored.height) == (40, 30)


def test_an_icc_profile_alone_does_not_stop_a_jpeg_being_kept(tenant):
    source = photo(icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())

    frame = Frame.objects.get(pk=upload(tenant, files=image_file("a.jpg", source)).json()[0]["id"])

    with frame.image.open("rb") as handle:
        assert handle.read() == source


def test_transparent_areas_become_white(tenant):
    png = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(png, format="PNG")

    frame = Frame.objects.get(pk=upload(tenant, files=image_file("logo.png", png.getvalue())).json()[0]["id"])

    assert all(channel > 245 for channel in stored_image(frame).getpixel((5, 5)))


def test_a_zip_of_images_becomes_frames_and_other_files_are_skipped(tenant):
    archive = zip_of(
        ("shoot/", b""),
        ("shoot/day1/a.jpg", jpeg_bytes(64, 48)),
        ("shoot/b.JPG", jpeg_bytes(32, 32)),
        ("shoot/notes.txt", b"not an image"),
        ("__MACOSX/shoot/._b.JPG", b"apple double"),
    )

    response = upload(tenant, archive=image_file("shoot.zip", archive))

    assert response.status_code == 202, response.content
    assert (response.json()["kind"], response.json()["state"]) == ("images", "queued")
    assert not Frame.objects.exists()  # the bulk worker adds them
    status = run_import(tenant.client("admin"), response.json())
    assert (status["state"], status["frames_created"], status["frames_skipped"]) == ("done", 2, 0)
    created = list(Frame.objects.order_by("id").values_list("original_name", "width"))
    assert created == [("shoot/day1/a.jpg", 64), ("shoot/b.JPG", 32)]


def truncated_jpeg() -> bytes:
    data = noisy_jpeg(320, 240)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "name,data,code",
    [
        pytest.param("empty.jpg", b"", "empty_file", id="empty"),
        pytest.param("notes.jpg", b"these are words, not pixels\n" * 20, "not_media", id="text-named-jpg"),
        pytest.param("cut.jpg", truncated_jpeg(), "corrupt", id="truncated"),
        pytest.param("bomb.png", png_declaring(30_000, 30_000), "image_bomb", id="decompression-bomb"),
    ],
)
def test_a_bad_file_refuses_the_whole_upload_naming_it(tenant, name, data, code):
    files_before = stored_files()

    response = upload(tenant, files=[image_file("good.jpg", jpeg_bytes()), image_file(name, data)])

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code
    assert body["detail"].startswith(f"{name}: ")
    assert body["files"] == [{"file": name, "code": code, "message": body["detail"].removeprefix(f"{name}: ")}]
    assert not Frame.objects.exists()
    assert stored_files() == files_before


def test_every_bad_file_is_named_in_one_answer(tenant):
    response = upload(
        tenant, files=[image_file("a.jpg", b""), image_file("ok.jpg", jpeg_bytes()), image_file("b.jpg", b"text")]
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_images"
    assert [problem["file"] for problem in response.json()["files"]] == ["a.jpg", "b.jpg"]


def test_the_configured_pixel_limit_applies(tenant):
    with override_settings(LABELLER={**settings.LABELLER, "MAX_IMAGE_PIXELS": 1000}):
        response = upload(tenant, files=image_file("big.jpg", jpeg_bytes(64, 48)))

    assert response.status_code == 400
    assert response.json()["code"] == "image_bomb" and "64x48" in response.json()["detail"]


def test_a_file_over_the_byte_limit_is_413(tenant):
    with override_settings(LABELLER={**settings.LABELLER, "MAX_IMAGE_BYTES": 100}):
        response = upload(tenant, files=image_file("big.jpg", jpeg_bytes(64, 48)))

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert not Frame.objects.exists()


def symlink_member() -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo("link.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, b"/etc/passwd"


@pytest.mark.parametrize(
    "archive,message",
    [
        pytest.param(
            zip_of(("ok.jpg", jpeg_bytes()), ("../escape.jpg", jpeg_bytes())), "'..' are not allowed", id="traversal"
        ),
        pytest.param(zip_of(("/abs.jpg", jpeg_bytes())), "absolute paths", id="absolute"),
        pytest.param(zip_of(("ok.jpg", jpeg_bytes()), symlink_member()), "symbolic link", id="symlink"),
        pytest.param(zip_of(("ok.jpg", jpeg_bytes()), ("bomb.png", bytes(5_000_000))), "expands", id="zip-bomb"),
    ],
)
def test_an_unsafe_zip_is_refused_whole(tenant, archive, message):
    files_before = stored_files()

    response = upload(tenant, archive=image_file("upload.zip", archive))

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "unsafe_archive"
    assert response.json()["detail"].startswith("upload.zip: ") and message in response.json()["detail"]
    assert not Frame.objects.exists()
    assert stored_files() == files_before


def test_a_zip_with_too_many_entries_is_refused(tenant):
    archive = zip_of(*((f"{index}.jpg", jpeg_bytes(8, 8)) for index in range(4)))

    with override_settings(LABELLER={**settings.LABELLER, "ZIP_MAX_FILES": 3}):
        response = upload(tenant, archive=image_file("many.zip", archive))

    assert response.status_code == 400 and "at most 3" in response.json()["detail"]


def test_a_bad_image_inside_a_zip_fails_the_import_naming_it_by_its_path(tenant):
    files_before = stored_files()
    archive = zip_of(("ok.jpg", jpeg_bytes()), ("sub/cut.jpg", truncated_jpeg()))

    response = upload(tenant, archive=image_file("a.zip", archive))

    assert response.status_code == 202
    status = run_import(tenant.client("admin"), response.json())
    assert (status["state"], status["error_code"]) == ("failed", "corrupt")
    assert status["error"].startswith("sub/cut.jpg: ")
    assert not Frame.objects.exists()
    assert stored_files() == files_before  # the stored zip went with the failure


@pytest.mark.parametrize(
    "archive,code,detail",
    [
        pytest.param(b"PK but not really a zip", "bad_archive", "not a readable zip", id="not-a-zip"),
        pytest.param(zip_of(("readme.txt", b"hello")), "no_images", "holds no images", id="no-images"),
    ],
)
def test_an_unreadable_zip_is_refused_at_once(tenant, archive, code, detail):
    files_before = stored_files()

    response = upload(tenant, archive=image_file("a.zip", archive))

    assert response.status_code == 400
    assert response.json()["code"] == code and detail in response.json()["detail"]
    assert not Frame.objects.exists() and not ImportJob.objects.exists()
    assert stored_files() == files_before


def test_a_zip_whose_data_is_damaged_fails_the_import_and_writes_nothing(tenant):
    files_before = stored_files()

    response = upload(tenant, archive=image_file("a.zip", damaged_zip("photo.jpg", noisy_jpeg(64, 64))))

    assert response.status_code == 202  # the central directory is sound: only reading the data tells
    status = run_import(tenant.client("admin"), response.json())
    assert (status["state"], status["error_code"]) == ("failed", "bad_archive")
    assert "'photo.jpg' is damaged" in status["error"]
    assert not Frame.objects.exists()
    assert stored_files() == files_before


def test_files_already_written_are_deleted_when_the_rows_cannot_be(tenant, monkeypatch):
    files_before = stored_files()

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Frame.objects, "bulk_create", fail)
    with pytest.raises(RuntimeError):
        upload(tenant, files=[image_file("a.jpg", jpeg_bytes()), image_file("b.jpg", jpeg_bytes())])

    assert stored_files() == files_before


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="nothing"),
        pytest.param(
            {
                "files": image_file("a.jpg", jpeg_bytes()),
                "archive": image_file("a.zip", zip_of(("b.jpg", jpeg_bytes()))),
            },
            id="both",
        ),
    ],
)
def test_send_either_files_or_an_archive(tenant, fields):
    response = upload(tenant, **fields)

    assert response.status_code == 400
    assert "files" in response.json()
    assert not Frame.objects.exists()


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
def test_only_admins_add_images(tenant, role):
    response = upload(tenant, role=role, files=image_file("a.jpg", jpeg_bytes()))

    assert response.status_code == 403
    assert not Frame.objects.exists()


def test_another_organisations_admin_gets_404_and_nothing_changes(tenant):
    intruder = make_tenant("intruder")
    files_before = stored_files()

    for org, project in (("acme", tenant.project), ("intruder", tenant.project)):
        response = client_for(intruder.admin).post(
            f"/api/v1/orgs/{org}/projects/{project.pk}/images/",
            {"files": image_file("a.jpg", jpeg_bytes())},
            format="multipart",
        )
        assert response.status_code == 404

    assert not Frame.objects.exists()
    assert stored_files() == files_before
