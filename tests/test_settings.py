"""The default run is safe: no debug pages, plain error pages, no credentials on show."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.views import APIView

from labeller.settings.reporting import CredentialHidingReporterFilter

REPO = Path(__file__).resolve().parents[1]

# Asks the development settings, in a fresh interpreter, what DEBUG is and what an
# unknown address shows. No database is touched: an anonymous 404 needs none.
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
response = Client().get("/no-such-page/")
print(json.dumps({"debug": settings.DEBUG, "status": response.status_code, "body": response.content.decode()}))
"""


def run_dev_settings(tmp_path, **env) -> dict:
    # Only what a shell needs: none of the caller's LABELLER_* or DJANGO_* variables leak in.
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    clean["DJANGO_SETTINGS_MODULE"] = "labeller.settings.dev"
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_development_settings_are_not_in_debug_mode_by_default(tmp_path):
    answer = run_dev_settings(tmp_path)
    assert answer["debug"] is False
    assert answer["status"] == 404
    assert "Page not found" in answer["body"]
    # Django's debug 404 lists every URL pattern; the plain page lists none.
    assert "URLconf" not in answer["body"] and "api/v1/" not in answer["body"]


def test_labeller_debug_turns_debug_on(tmp_path):
    assert run_dev_settings(tmp_path, LABELLER_DEBUG="1")["debug"] is True


def test_an_unknown_address_is_a_plain_404_page_with_a_policy(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content and b"URLconf" not in response.content
    assert "script-src 'self'" in response["Content-Security-Policy"]


def broken_page(request):
    raise RuntimeError("secret detail in a traceback")


class BrokenApi(APIView):
    permission_classes = []

    def get(self, request):
        raise RuntimeError("secret detail in a traceback")


urlpatterns = [path("broken/", broken_page), path("api/broken/", BrokenApi.as_view())]


@pytest.mark.parametrize("address", ["/broken/", "/api/broken/"], ids=["page", "api"])
@override_settings(ROOT_URLCONF=__name__)
def test_a_server_error_shows_no_traceback(client, db, address):
    client.raise_request_exception = False
    response = client.get(address)
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
    assert b"secret detail" not in response.content and b"Traceback" not in response.content


@override_settings(CELERY_BROKER_URL="redis://:hunter2@redis:6379/0")
def test_debug_pages_hide_broker_urls_with_passwords():
    safe = CredentialHidingReporterFilter().get_safe_settings()
    assert "hunter2" not in str(safe["CELERY_BROKER_URL"])
