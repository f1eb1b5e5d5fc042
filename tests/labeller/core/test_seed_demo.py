import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from labeller.annotations.models import Label
from labeller.media.models import IngestStage, Video
from labeller.tenants.models import Membership, Organization

pytestmark = pytest.mark.django_db


def test_the_demo_is_seeded_once_with_working_logins(django_capture_on_commit_callbacks, capsys):
    with django_capture_on_commit_callbacks() as enqueued:
        call_command("seed_demo", "--url", "http://127.0.0.1:8000/")
        call_command("seed_demo")  # idempotent: a second run adds nothing
    out = capsys.readouterr().out
    assert "admin / labeller-admin" in out and "annotator / labeller-annotator" in out
    organization = Organization.objects.get()
    roles = dict(Membership.objects.filter(organization=organization).values_list("user__username", "role"))
    assert roles == {"admin": "admin", "annotator": "annotator"}
    login = RequestFactory().post("/login/")  # django-axes checks logins against their request
    assert authenticate(login, username="admin", password="labeller-admin").is_superuser
    assert not authenticate(login, username="annotator", password="labeller-annotator").is_staff
    assert {"food", "food.fruit", "food.fruit.apple", "food.dish.dessert", "body.hand"} <= set(Label.objects.values_list("name", flat=True))
    video = Video.objects.get()
    assert video.stage == IngestStage.PROBING and video.duration_s == pytest.approx(12, abs=0.1)
    assert len(enqueued) == 1  # the worker ingests it in the background
