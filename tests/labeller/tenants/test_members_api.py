"""Members: nobody joins by name; invitations are accepted by the person invited; roles, deactivation, activity."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from labeller.annotations.models import AnnotationAction, AnnotationEvent, AnnotationStatus
from labeller.media.models import FrameStatus
from labeller.tenants.models import Invitation, Membership, Role
from tests.conftest import api_path, client_for
from tests.factories import FrameFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def invite(tenant, email="new@example.com", role="annotator"):
    return tenant.client("admin").post(api_path(tenant, "invitations/"), {"email": email, "role": role}, format="json")


def token_of(url: str) -> str:
    return re.search(r"/invite/([^/]+)/$", url).group(1)


def membership_state(tenant):
    return sorted(
        Membership.objects.filter(organization=tenant.organization).values_list("user__username", "role", "is_active")
    )


# --- nobody is added by name ----------------------------------------------------------------


def test_an_existing_user_cannot_be_added_by_name(tenant):
    UserFactory(username="bystander")
    response = tenant.client("admin").post(
        api_path(tenant, "members/"), {"username": "bystander", "role": "annotator"}, format="json"
    )
    assert response.status_code == 400
    assert "password" in response.json()
    assert not Membership.objects.filter(user__username="bystander").exists()


def test_creating_an_account_with_a_taken_name_says_nothing_about_who_has_it(tenant, other_tenant):
    response = tenant.client("admin").post(
        api_path(tenant, "members/"),
        {"username": "rival-admin", "password": "a long passphrase 42", "role": "annotator"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["username"] == ["This username cannot be used; choose another."]
    assert not Membership.objects.filter(organization=tenant.organization, user__username="rival-admin").exists()


def test_an_admin_creates_an_account_that_can_log_in(tenant):
    response = tenant.client("admin").post(
        api_path(tenant, "members/"),
        {"username": "station-1", "password": "a long passphrase 42", "role": "annotator", "email": "s1@example.com"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "annotator" and response.json()["is_active"] is True
    assert "password" not in response.json()
    assert Membership.objects.get(pk=response.json()["id"]).user.check_password("a long passphrase 42")


def test_a_weak_password_is_refused_with_the_reason(tenant):
    response = tenant.client("admin").post(
        api_path(tenant, "members/"), {"username": "station-2", "password": "123", "role": "annotator"}, format="json"
    )
    assert response.status_code == 400
    assert "password" in response.json()["errors"]


# --- invitations ---------------------------------------------------------------------------


def test_an_invitation_is_mailed_and_answered_with_its_link(tenant):
    response = invite(tenant, "New@Example.com", "reviewer")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["mailed"] is True and body["invitation"]["email"] == "new@example.com"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    assert body["url"] in mail.outbox[0].body
    token = token_of(body["url"])
    assert len(token) >= 40
    # Only the hash is kept: the database cannot give the link back.
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert not Membership.objects.filter(organization=tenant.organization, user__email="new@example.com").exists()


def test_accepting_makes_the_logged_in_person_a_member_with_the_role(tenant):
    person = UserFactory(username="invitee", email="new@example.com")
    token = token_of(invite(tenant, role="reviewer").json()["url"])
    preview = APIClient().get(f"/api/v1/invitations/{token}")
    assert preview.status_code == 200 and preview.json()["organization"] == tenant.organization.name

    response = client_for(person).post(f"/api/v1/invitations/{token}/accept")

    assert response.status_code == 201, response.content
    assert Membership.objects.get(organization=tenant.organization, user=person).role == Role.REVIEWER
    assert client_for(person).get(api_path(tenant, "projects/")).status_code == 200


def test_an_invitation_works_once(tenant):
    token = token_of(invite(tenant).json()["url"])
    assert client_for(UserFactory(username="first")).post(f"/api/v1/invitations/{token}/accept").status_code == 201
    second = client_for(UserFactory(username="second")).post(f"/api/v1/invitations/{token}/accept")
    assert second.status_code == 410
    assert "already been used" in second.json()["detail"]
    assert not Membership.objects.filter(user__username="second").exists()


def test_an_expired_or_withdrawn_invitation_is_refused(tenant):
    expired = token_of(invite(tenant, "late@example.com").json()["url"])
    Invitation.objects.filter(email="late@example.com").update(expires_at=timezone.now() - timedelta(seconds=1))
    withdrawn = invite(tenant, "gone@example.com").json()
    assert (
        tenant.client("admin").delete(api_path(tenant, f"invitations/{withdrawn['invitation']['id']}")).status_code
        == 204
    )
    person = UserFactory(username="invitee")
    for token, words in [(expired, "expired"), (token_of(withdrawn["url"]), "withdrawn")]:
        response = client_for(person).post(f"/api/v1/invitations/{token}/accept")
        assert response.status_code == 410 and words in response.json()["detail"]
    assert client_for(person).post("/api/v1/invitations/not-a-token/accept").status_code == 404
    assert not Membership.objects.filter(user=person).exists()


def test_inviting_again_replaces_the_pending_link(tenant):
    first = token_of(invite(tenant).json()["url"])
    second = token_of(invite(tenant).json()["url"])
    assert client_for(UserFactory()).post(f"/api/v1/invitations/{first}/accept").status_code == 410
    assert client_for(UserFactory()).post(f"/api/v1/invitations/{second}/accept").status_code == 201


def test_a_new_account_through_the_link_joins_and_is_logged_in(tenant):
    token = token_of(invite(tenant, role="annotator").json()["url"])
    browser = APIClient(enforce_csrf_checks=True)
    browser.get(f"/invite/{token}/")  # the page sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value

    refused = browser.post(
        f"/api/v1/invitations/{token}/accept", {"username": "newbie", "password": "a long passphrase 42"}, format="json"
    )
    assert refused.status_code == 403  # no CSRF token: no account
    response = browser.post(
        f"/api/v1/invitations/{token}/accept",
        {"username": "newbie", "password": "a long passphrase 42"},
        format="json",
        HTTP_X_CSRFTOKEN=csrf,
    )

    assert response.status_code == 201, response.content
    membership = Membership.objects.get(user__username="newbie")
    assert membership.organization == tenant.organization and membership.user.email == "new@example.com"
    assert browser.get("/api/v1/me").json()["username"] == "newbie"


def test_a_refused_sign_up_leaves_no_account_and_the_link_usable(tenant):
    token = token_of(invite(tenant).json()["url"])
    response = APIClient().post(
        f"/api/v1/invitations/{token}/accept",
        {"username": "acme-admin", "password": "a long passphrase 42"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["username"] == ["This username cannot be used; choose another."]
    assert (
        APIClient()
        .post(
            f"/api/v1/invitations/{token}/accept",
            {"username": "fresh", "password": "a long passphrase 42"},
            format="json",
        )
        .status_code
        == 201
    )


def test_inviting_a_member_already_there_is_a_400(tenant):
    tenant.annotator.email = "ann@example.com"
    tenant.annotator.save()
    response = invite(tenant, "ann@example.com")
    assert response.status_code == 400 and "already a member" in response.json()["detail"]


# --- roles and deactivation ---------------------------------------------------------------


def test_admin_changes_a_role(tenant):
    membership = Membership.objects.get(user=tenant.annotator)
    response = tenant.client("admin").patch(
        api_path(tenant, f"members/{membership.pk}"), {"role": "reviewer"}, format="json"
    )
    assert response.status_code == 200 and response.json()["role"] == "reviewer"


def test_a_deactivated_member_reaches_nothing_and_their_frame_is_released(tenant):
    frame = FrameFactory(
        project=tenant.project, assigned_to=tenant.annotator, assigned_at=timezone.now(), status=FrameStatus.IN_PROGRESS
    )
    membership = Membership.objects.get(user=tenant.annotator)

    response = tenant.client("admin").patch(
        api_path(tenant, f"members/{membership.pk}"), {"is_active": False}, format="json"
    )

    assert response.status_code == 200 and response.json()["is_active"] is False
    assert tenant.client("annotator").get(api_path(tenant, "projects/")).status_code == 404
    assert tenant.client("annotator").get("/api/v1/me").json()["organizations"] == []
    frame.refresh_from_db()
    assert frame.assigned_to is None and frame.status == FrameStatus.NEW
    tenant.client("admin").patch(api_path(tenant, f"members/{membership.pk}"), {"is_active": True}, format="json")
    assert tenant.client("annotator").get(api_path(tenant, "projects/")).status_code == 200


@pytest.mark.parametrize(
    "change", [{"role": "reviewer"}, {"is_active": False}, None], ids=["demote", "deactivate", "remove"]
)
def test_the_last_admin_stays(tenant, change):
    membership = Membership.objects.get(user=tenant.admin)
    url = api_path(tenant, f"members/{membership.pk}")
    client = tenant.client("admin")
    response = client.delete(url) if change is None else client.patch(url, change, format="json")
    assert response.status_code == 409
    assert "at least one admin" in response.json()["detail"]
    membership.refresh_from_db()
    assert (membership.role, membership.is_active) == (Role.ADMIN, True)


def test_one_of_two_admins_may_step_down(tenant):
    MembershipFactory(user=UserFactory(username="second-admin"), organization=tenant.organization, role=Role.ADMIN)
    membership = Membership.objects.get(user=tenant.admin)
    response = tenant.client("admin").patch(
        api_path(tenant, f"members/{membership.pk}"), {"role": "annotator"}, format="json"
    )
    assert response.status_code == 200


# --- non-admins -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
@pytest.mark.parametrize(
    "method,suffix,body",
    [
        ("get", "members/", None),
        ("post", "members/", {"username": "sneaky", "password": "a long passphrase 42", "role": "admin"}),
        ("patch", "members/{admin}", {"role": "annotator"}),
        ("patch", "members/{self}", {"role": "admin"}),
        ("delete", "members/{admin}", None),
        ("get", "members/activity", None),
        ("get", "invitations/", None),
        ("post", "invitations/", {"email": "friend@example.com", "role": "admin"}),
        ("delete", "invitations/{invitation}", None),
    ],
    ids=[
        "list",
        "create-account",
        "demote-admin",
        "promote-self",
        "remove-admin",
        "activity",
        "invitations",
        "invite",
        "withdraw",
    ],
)
def test_non_admins_get_403_and_change_nothing(tenant, role, method, suffix, body):
    invitation_id = invite(tenant, "pending@example.com").json()["invitation"]["id"]
    ids = {
        "admin": Membership.objects.get(user=tenant.admin).pk,
        "self": Membership.objects.get(user=getattr(tenant, role)).pk,
        "invitation": invitation_id,
    }
    members_before = membership_state(tenant)
    invitations_before = list(Invitation.objects.values_list("id", "email", "revoked_at", "accepted_at"))

    response = getattr(tenant.client(role), method)(api_path(tenant, suffix.format(**ids)), body, format="json")

    assert response.status_code == 403
    assert membership_state(tenant) == members_before
    assert list(Invitation.objects.values_list("id", "email", "revoked_at", "accepted_at")) == invitations_before
    assert not Membership.objects.filter(user__username="sneaky").exists()


# --- activity -------------------------------------------------------------------------------


def test_activity_counts_boxes_frames_and_kept_proposals_per_day(tenant):
    frame = FrameFactory(project=tenant.project)
    FrameFactory(
        project=tenant.project, status=FrameStatus.COMPLETE, completed_by=tenant.annotator, completed_at=timezone.now()
    )
    proposed = {"status": AnnotationStatus.PROPOSED}
    confirmed = {"status": AnnotationStatus.CONFIRMED}
    rejected = {"status": AnnotationStatus.REJECTED}
    for action, before, after in [
        (AnnotationAction.CREATED, None, confirmed),
        (AnnotationAction.CONFIRMED, proposed, confirmed),
        (AnnotationAction.UPDATED, proposed, confirmed),
        (AnnotationAction.REJECTED, proposed, rejected),
    ]:
        AnnotationEvent.objects.create(
            project=tenant.project,
            annotation_id=1,
            frame_id=frame.pk,
            actor=tenant.annotator,
            action=action,
            before=before,
            after=after,
        )

    response = tenant.client("admin").get(api_path(tenant, "members/activity?days=7"))

    assert response.status_code == 200
    row = next(r for r in response.json() if r["username"] == tenant.annotator.username)
    assert len(row["days"]) == 7 and row["days"][-1]["day"] == timezone.localdate().isoformat()
    assert (row["days"][-1]["boxes"], row["days"][-1]["frames"]) == (2, 1)
    assert (row["proposals_accepted"], row["proposals_rejected"]) == (2, 1)
    assert row["acceptance_rate"] == pytest.approx(2 / 3)
    idle = next(r for r in response.json() if r["username"] == tenant.reviewer.username)
    assert idle["acceptance_rate"] is None and sum(d["boxes"] for d in idle["days"]) == 0


def test_token_auth_for_scripts(tenant):
    token = tenant.client("annotator").post("/api/v1/token").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(api_path(tenant, "projects/")).status_code == 200
