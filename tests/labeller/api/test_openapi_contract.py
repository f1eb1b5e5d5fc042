"""The API answers as its OpenAPI schema says: schemathesis generates requests from the schema.

Every operation is called with generated bodies, queries and headers, as an admin of a
seeded organisation, with the seeded objects' ids in the path (random ids would only find
404s). A server error or an answer that the schema does not describe (status, content type,
body) fails the test. Examples are bounded per operation and derandomised, so CI runs the same
cases every time in about a minute.
"""

import json
import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from labeller.tenants.models import Membership
from labeller.tenants.tokens import api_token_issue
from tests.conftest import make_tenant
from tests.labeller.api.test_tenancy import victim_objects

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The route's path segment before {id}, to the seeded object of that kind.
KIND_OF_SEGMENT = {
    "annotations": "annotation",
    "embedding-reports": "embedding_report",
    "exports": "export",
    "frames": "frame",
    "imports": "import",
    "invitations": "invitation",
    "labels": "label",
    "members": "member",
    "projects": "project",
    "training-runs": "training_run",
    "uploads": "upload",
    "videos": "video",
}


def load_schema():
    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    return loaded


schema = load_schema()


@pytest.fixture
def kept_connection():
    """The test's transaction survives each request, as in Django's test client."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db, kept_connection):
    tenant = make_tenant("acme")
    ids = victim_objects(tenant)
    ids["member"] = Membership.objects.get(user=tenant.annotator).pk  # not the caller's own
    return tenant, ids


def seeded_path_parameters(path: str, ids: dict) -> dict:
    found = {"org": "acme", "project_id": ids["project"], "frame_id": ids["frame"]}
    match = re.search(r"/([a-z-]+)/\{id\}", path)
    if match and match.group(1) in KIND_OF_SEGMENT:
        found["id"] = ids[KIND_OF_SEGMENT[match.group(1)]]
    return found


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_its_schema_says(case, seeded):
    tenant, ids = seeded
    for name, value in seeded_path_parameters(case.path, ids).items():
        if case.path_parameters is not None and name in case.path_parameters:
            case.path_parameters[name] = value
    # The token is issued again when a case revoked it (DELETE /api/v1/token).
    token = api_token_issue(user=tenant.admin).key
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


def test_list_reads_are_documented_as_cursor_pages_and_me_as_an_object():
    document = SchemaGenerator().get_schema(request=None, public=True)
    components = document["components"]["schemas"]

    def resolved(schema):
        return components[schema["$ref"].split("/")[-1]] if "$ref" in schema else schema

    me = resolved(document["paths"]["/api/v1/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    assert me["type"] == "object" and {"username", "organizations"} <= set(me["properties"])
    projects = document["paths"]["/api/v1/orgs/{org}/projects/"]["get"]["responses"]
    page = resolved(projects["200"]["content"]["application/json"]["schema"])
    assert {"next", "previous", "results"} <= set(page["properties"])
    assert {"400", "401", "403", "404", "429"} <= set(projects)
    assert "201" in document["paths"]["/api/v1/orgs/{org}/projects/"]["post"]["responses"]
    assert components["Frame"]["properties"]["completed_by"].get("nullable") is True


@pytest.mark.django_db
def test_a_form_with_too_many_fields_answers_json_400_not_an_html_page(tenant):
    body = "&".join(f"label_ids={i}" for i in range(2000))
    response = tenant.client("admin").generic(
        "POST", f"/api/v1/orgs/acme/projects/{tenant.project.pk}/labels/", body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.django_db
def test_an_id_beyond_64_bits_is_the_clients_error(tenant):
    response = tenant.client("admin").post(
        f"/api/v1/orgs/acme/projects/{tenant.project.pk}/exports/", {"format": "coco", "video_ids": [2**70]}, format="json"
    )
    assert response.status_code == 400, response.content
