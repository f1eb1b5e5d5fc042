"""Hostile requests answer a clear 4xx, never a 500: cursors, nesting, body size, free text."""

import base64
import json

import pytest

from labeller.projects.models import Project
from tests.conftest import api_path

pytestmark = pytest.mark.django_db


def cursor_of(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


def post_json(client, url, raw: str | bytes):
    return client.post(url, data=raw, content_type="application/json")


# --- pagination -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(cursor_of("p=abc"), id="position-not-an-id"),
        pytest.param(cursor_of("p=1e9999"), id="position-a-float"),
        pytest.param(cursor_of("p=" + "9" * 30), id="position-beyond-64-bits"),
        pytest.param(cursor_of("o=-1"), id="negative-offset"),
        pytest.param("%%%not-base64", id="not-base64"),
    ],
)
def test_a_bad_cursor_is_a_400_naming_the_cursor(tenant, cursor):
    response = tenant.client("annotator").get(api_path(tenant, "projects/"), {"cursor": cursor})

    assert response.status_code == 400, response.content
    assert "cursor" in response.json()


def test_a_cursor_the_api_gave_still_pages(tenant):
    for number in range(3):
        Project.objects.create(organization=tenant.organization, name=f"p{number}")
    first = tenant.client("annotator").get(api_path(tenant, "projects/"), {"page_size": 2}).json()

    second = tenant.client("annotator").get(first["next"])

    assert second.status_code == 200
    assert len(first["results"]) + len(second.json()["results"]) == 4  # the tenant's project and three more


# --- JSON bodies ------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_not_a_recursion_error(tenant):
    deep = '{"name": "x", "description": ' + "[" * 100_000 + "]" * 100_000 + "}"

    response = post_json(tenant.client("admin"), api_path(tenant, "projects/"), deep)

    assert response.status_code == 400, response.content
    assert "nested" in response.json()["detail"]
    assert not Project.objects.filter(name="x").exists()


def test_moderately_nested_json_past_the_limit_is_refused(tenant):
    nested = json.dumps({"name": "x", "description": json.loads("[" * 40 + "]" * 40)})

    response = post_json(tenant.client("admin"), api_path(tenant, "projects/"), nested)

    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_a_body_over_the_limit_is_a_413_with_a_readable_message(tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    huge = json.dumps({"name": "big", "description": "x" * (2 * 1024 * 1024)})

    response = post_json(tenant.client("admin"), api_path(tenant, "projects/"), huge)

    assert response.status_code == 413, response.content
    assert "1,048,576 bytes" in response.json()["detail"]
    assert not Project.objects.filter(name="big").exists()


def test_a_form_body_over_the_limit_is_a_413_too(tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

    response = tenant.client("admin").post(
        api_path(tenant, "projects/"),
        data="name=big&description=" + "x" * (2 * 1024 * 1024),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 413, response.content
    assert not Project.objects.filter(name="big").exists()


def test_a_project_description_has_a_sensible_limit(tenant):
    url = api_path(tenant, "projects/")

    too_long = tenant.client("admin").post(url, {"name": "long", "description": "x" * 10_001}, format="json")
    fits = tenant.client("admin").post(url, {"name": "fits", "description": "x" * 10_000}, format="json")

    assert too_long.status_code == 400 and "description" in too_long.json()
    assert fits.status_code == 201, fits.content
    edit = tenant.client("admin").patch(
        api_path(tenant, f"projects/{fits.json()['id']}"), {"version": 1, "description": "y" * 10_001}, format="json"
    )
    assert edit.status_code == 400 and "description" in edit.json()
