"""The account page shows the script token and revokes it, under the app's strict policy."""

import pytest
from rest_framework.authtoken.models import Token

from tests.browser.workspace import log_in

pytestmark = pytest.mark.browser


def test_a_person_shows_and_then_revokes_their_token(strict_page, labelling_project):
    page = strict_page
    log_in(page, "ann", "/account/", ready="#account[data-ready]")
    page.get_by_text("You have no live token.").wait_for()

    page.get_by_role("button", name="Show my token").click()
    shown = page.locator("#token-key")
    shown.wait_for()
    assert shown.text_content() == Token.objects.get(user__username="ann").key

    page.get_by_role("button", name="Revoke token").click()
    page.get_by_text("Token revoked").wait_for()
    assert not Token.objects.filter(user__username="ann").exists()
