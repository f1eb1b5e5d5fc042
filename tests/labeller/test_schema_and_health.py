from unittest import mock

import pytest
import yaml
from django.db import DatabaseError


@pytest.mark.django_db
def test_the_openapi_schema_describes_the_tenant_routes(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert "/api/v1/orgs/{org}/frames/{frame_id}/annotations/" in schema["paths"]
    assert "/api/v1/orgs/{org}/annotations/{id}" in schema["paths"]


@pytest.mark.django_db
def test_the_docs_page_renders(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.mark.django_db
def test_healthz_reports_the_database(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_hides_the_database_error(client):
    refused = DatabaseError('could not connect to server at "db.internal" (10.0.0.5), user "labeller"')

    with mock.patch("labeller.core.health.connection.cursor", side_effect=refused):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "unavailable"}
