"""Logins are throttled (django-axes), the API has throttles, tokens expire and can be revoked,
passwords can be reset by mail, and production refuses the example secret key."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tests.conftest import api_path
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[3]


# --- login throttling -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "login_path, next_page",
    [("/login/", "/"), ("/admin/login/", "/admin/")],
    ids=["app-login", "admin-login"],
)
def test_a_username_is_locked_out_after_repeated_failures(client, settings, login_path, next_page):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="alice", password="right-password", is_staff=True, is_superuser=True)
    for _ in range(2):
        refused = client.post(login_path, {"username": "alice", "password": "wrong", "next": next_page})
        assert refused.status_code == 200  # the form again, with its error
    locked = client.post(login_path, {"username": "alice", "password": "wrong", "next": next_page})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    # Even the right password is refused while locked out, and no session is made.
    right = client.post(login_path, {"username": "alice", "password": "right-password", "next": next_page})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_username_and_address(client, settings):
    settings.AXES_FAILURE_LIMIT = 2
    UserFactory(username="alice", password="right-password")
    UserFactory(username="bob", password="bobs-password")
    for _ in range(2):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/login/", {"username": "bob", "password": "bobs-password"}).status_code == 302
    assert client.post("/login/", {"username": "alice", "password": "right-password"}, REMOTE_ADDR="10.0.0.9").status_code == 302


def test_a_successful_login_clears_earlier_failures(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="alice", password="right-password")
    for _ in range(2):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "right-password"}).status_code == 302
    client.logout()
    for _ in range(2):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200


# --- API throttles --------------------------------------------------------------------------


def test_the_api_answers_429_past_the_user_rate(tenant, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "3/min")
    client = tenant.client("annotator")
    answers = [client.get(api_path(tenant, "projects/")).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    # Another person's budget is their own.
    assert tenant.client("admin").get(api_path(tenant, "projects/")).status_code == 200


def test_the_api_answers_429_past_the_anonymous_rate(monkeypatch):
    # The schema is the API's one anonymous route (and an expensive one to build).
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "1/min")
    answers = [APIClient().get("/api/schema/").status_code for _ in range(2)]
    assert answers == [200, 429]


def test_the_default_rates_are_generous_and_configurable(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    number, period = rates["user"].split("/")
    assert int(number) >= 1000 and period.startswith("m")


# --- tokens ---------------------------------------------------------------------------------


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_an_expired_token_is_refused_and_a_new_one_is_issued(tenant, settings):
    settings.API_TOKEN_LIFETIME = timedelta(days=30)
    old_key = tenant.client("annotator").post("/api/v1/token").json()["token"]
    assert token_client(old_key).get(api_path(tenant, "projects/")).status_code == 200

    Token.objects.filter(key=old_key).update(created=timezone.now() - timedelta(days=31))
    refused = token_client(old_key).get(api_path(tenant, "projects/"))
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]
    assert tenant.client("annotator").get("/api/v1/token").status_code == 404

    issued = tenant.client("annotator").post("/api/v1/token").json()
    assert issued["token"] != old_key
    assert token_client(issued["token"]).get(api_path(tenant, "projects/")).status_code == 200


def test_asking_again_returns_the_same_live_token_with_its_expiry(tenant, settings):
    settings.API_TOKEN_LIFETIME = timedelta(days=30)
    first = tenant.client("annotator").post("/api/v1/token").json()
    again = tenant.client("annotator").post("/api/v1/token").json()
    assert again["token"] == first["token"]
    status = tenant.client("annotator").get("/api/v1/token").json()
    assert "token" not in status  # the status does not show the key
    assert status["expires"] == first["expires"]


def test_a_revoked_token_is_refused(tenant):
    key = tenant.client("annotator").post("/api/v1/token").json()["token"]
    assert tenant.client("annotator").delete("/api/v1/token").status_code == 204
    assert token_client(key).get(api_path(tenant, "projects/")).status_code == 401
    assert not Token.objects.filter(user=tenant.annotator).exists()
    assert tenant.client("annotator").get("/api/v1/token").status_code == 404


def test_a_token_can_revoke_itself_but_not_someone_elses(tenant):
    mine = tenant.client("annotator").post("/api/v1/token").json()["token"]
    theirs = tenant.client("admin").post("/api/v1/token").json()["token"]
    assert token_client(mine).delete("/api/v1/token").status_code == 204
    assert token_client(theirs).get(api_path(tenant, "projects/")).status_code == 200


def test_anonymous_callers_cannot_see_or_revoke_tokens(tenant):
    tenant.client("annotator").post("/api/v1/token")
    for method in ("get", "post", "delete"):
        assert getattr(APIClient(), method)("/api/v1/token").status_code == 403
    assert Token.objects.filter(user=tenant.annotator).exists()


def test_the_account_page_offers_revoking_under_the_strict_policy(tenant, client):
    client.force_login(tenant.annotator)
    page = client.get("/account/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="token-revoke"' in html and "frontend/account.js" in html
    assert_no_inline_script_or_style(html)
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def assert_no_inline_script_or_style(html: str) -> None:
    assert "<style" not in html and " style=" not in html
    for script in re.findall(r"<script[^>]*>", html):
        assert "src=" in script, script


# --- password reset ------------------------------------------------------------------------


def test_a_password_reset_mail_arrives_and_its_link_sets_a_new_password(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    UserFactory(username="alice", password="forgotten-password", email="alice@example.com")

    form = client.get("/password-reset/")
    assert form.status_code == 200
    assert_no_inline_script_or_style(form.content.decode())
    sent = client.post("/password-reset/", {"email": "alice@example.com"}, follow=True)
    assert sent.status_code == 200 and b"Check your email" in sent.content
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"] and "alice" in message.body
    link = re.search(r"https?://[^/\s]+(/password-reset/\S+/)", message.body).group(1)

    confirm = client.get(link, follow=True)  # Django swaps the token for a session-bound URL
    assert confirm.status_code == 200 and b"Choose a new password" in confirm.content
    assert_no_inline_script_or_style(confirm.content.decode())
    new_password = "a-new-long-password-9"
    done = client.post(confirm.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}, follow=True)
    assert b"Password set" in done.content

    user = get_user_model().objects.get(username="alice")
    assert user.check_password(new_password)
    assert client.post("/login/", {"username": "alice", "password": new_password}).status_code == 302
    # The link works once.
    client.logout()
    assert b"no longer works" in client.get(link, follow=True).content


def test_a_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sent = client.post("/password-reset/", {"email": "nobody@example.com"}, follow=True)
    assert b"Check your email" in sent.content
    assert mail.outbox == []


# --- production settings --------------------------------------------------------------------


def example_secret_key() -> str:
    line = next(l for l in (REPO / ".env.example").read_text().splitlines() if l.startswith("LABELLER_SECRET_KEY="))
    return line.split("=", 1)[1].strip()


def import_prod_settings(tmp_path, secret_key: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LABELLER_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "labeller.settings.prod",
        "LABELLER_SECRET_KEY": secret_key,
    }
    code = "import django; django.setup(); print('started')"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "secret_key",
    [pytest.param(example_secret_key(), id="env-example"), pytest.param("insecure-dev-key-change-me", id="dev-default"), pytest.param("  ", id="blank")],
)
def test_production_refuses_a_public_secret_key(tmp_path, secret_key):
    result = import_prod_settings(tmp_path, secret_key)
    assert result.returncode != 0
    assert "LABELLER_SECRET_KEY" in result.stderr


def test_production_starts_with_a_secret_of_its_own(tmp_path):
    result = import_prod_settings(tmp_path, "k3Jx0-q9w8e7r6t5y4u3i2o1p0a9s8d7f6g5h4j3k2l1z0x9c8v7b6")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
