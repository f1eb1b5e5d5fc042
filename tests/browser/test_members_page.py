"""The members page: an admin invites someone, who accepts in their own browser, and then
the admin changes their role."""

import pytest
from django.core import mail

from labeller.tenants.models import Membership, Role
from tests.browser.workspace import log_in
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.browser

READY = "#members-page[data-ready]"


@pytest.fixture
def organization(transactional_db):
    organization = OrganizationFactory(slug="acme", name="Acme")
    MembershipFactory(user=UserFactory(username="boss"), organization=organization, role=Role.ADMIN)
    return organization


def test_invite_accept_in_another_browser_then_change_the_role(strict_page, organization, browser, live_server, shots):
    page = strict_page
    log_in(page, "boss", "/o/acme/members/", ready=READY)
    page.get_by_label("Email").fill("newcomer@example.com")
    page.locator("#invite-form").get_by_label("Role").select_option("annotator")
    page.get_by_role("button", name="Invite").click()

    link = page.get_by_label("Invitation link for newcomer@example.com")
    link.wait_for()
    url = link.input_value()
    assert url.startswith(live_server.url + "/invite/")
    assert url in mail.outbox[-1].body
    assert page.locator("#invitation-list [data-email='newcomer@example.com']").is_visible()
    shots(page, "members-invited", keep=True)

    # The invited person, in a browser of their own, has no account yet: they make one through the link.
    other = browser.new_context(base_url=live_server.url)
    try:
        guest = other.new_page()
        guest.set_default_timeout(10_000)
        guest.goto(url)
        guest.wait_for_selector("#invitation-page[data-ready]")
        assert "Join Acme" in guest.locator("h1").inner_text()
        assert "as annotator" in guest.locator("#invitation-offer").inner_text()
        guest.get_by_label("Username").fill("newcomer")
        guest.get_by_label("Password").fill("a long passphrase 42")
        guest.get_by_role("button", name="Create my account and join").click()
        guest.wait_for_selector("#invitation-page[data-accepted]")
        assert "You are now a member of Acme as annotator" in guest.locator("#invitation-result").inner_text()
        guest.get_by_role("link", name="Go to your projects").click()
        guest.get_by_role("heading", name="Acme (annotator)").wait_for()
    finally:
        other.close()
    assert Membership.objects.get(user__username="newcomer").role == Role.ANNOTATOR

    page.reload()
    page.wait_for_selector(READY)
    row = page.locator("tr[data-member=newcomer]")
    assert row.is_visible()
    assert page.locator("#invitation-list [data-email='newcomer@example.com']").count() == 0
    row.get_by_label("Role of newcomer").select_option("reviewer")
    page.locator("#member-status", has_text="newcomer is now reviewer").wait_for()
    assert Membership.objects.get(user__username="newcomer").role == Role.REVIEWER
    shots(page, "members-role-changed", keep=True)

    # The last admin cannot demote themself: the server's reason is shown and nothing changes.
    page.locator("tr[data-member=boss]").get_by_label("Role of boss").select_option("annotator")
    page.locator("#member-status", has_text="at least one admin").wait_for()
    assert Membership.objects.get(user__username="boss").role == Role.ADMIN
