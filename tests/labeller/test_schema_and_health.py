import pytest
import yaml


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
