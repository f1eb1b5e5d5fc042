import socket
import time
from unittest import mock

import pytest
import yaml
from django.db import DatabaseError

from tests.celery_worker import publishing_to


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
def test_healthz_reports_the_database_and_the_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_hides_the_database_error(client):
    refused = DatabaseError('could not connect to server at "db.internal" (10.0.0.5), user "labeller"')

    with mock.patch("labeller.core.health.connection.cursor", side_effect=refused):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "unavailable", "broker": "ok"}
    assert b"db.internal" not in response.content


@pytest.fixture
def silent_server():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.django_db
@pytest.mark.parametrize("answer", ["refused", "never"])
def test_healthz_reports_an_unreachable_broker_without_its_address_or_password(client, answer, silent_server):
    port = 1 if answer == "refused" else silent_server
    broker_url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"

    with publishing_to(broker_url, {"visibility_timeout": 3600, "socket_connect_timeout": 2}):
        started = time.monotonic()
        response = client.get("/healthz")
        took = time.monotonic() - started

    # Requests still work without the broker (writes keep their record): degraded, not down.
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "ok", "broker": "unavailable"}
    assert b"hunter2" not in response.content and b"127.0.0.1" not in response.content
    assert took < 4, "a broker that never answers must not hang the health check"
