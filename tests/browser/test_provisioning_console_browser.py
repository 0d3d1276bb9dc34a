"""The provisioning and single sign-on pages in Chromium at scale (1,000 members, some provisioned by
SCIM, and three dozen SCIM tokens): search finds a token, the pager pages, revoking a token says what
stops and for how many people and then revokes it, the connection page's copy buttons put the exact
values on the clipboard, and each page family fits a 1,280 px window (a screenshot of each is kept)."""

import datetime

import pytest
from django.utils import timezone

from scim.models import ScimToken, ScimUser
from sso.api import SsoConnectionSerializer
from sso.models import Domain
from tests.browser.test_agents_console_browser import fits
from tests.browser.test_browser import log_in, nav
from tests.provisioning_console.conftest import linked, oidc_row, refused, saml_row, tokens_bulk
from tests.scale import members_bulk

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def estate(owner):
    """1,000 members (40 of them the IdP's), 60 SCIM tokens (idp-000 newest), an OIDC and a SAML
    connection with linked people, and domains."""
    org = owner.org
    people = members_bulk(org, 1000)
    ScimUser.objects.bulk_create([ScimUser(org=org, membership=m, user_name=m.user.email)
                                  for m in people[:40]])
    made = tokens_bulk(org, 60, maker=owner, last_used_at=timezone.now() - datetime.timedelta(hours=1))
    refused(org, made[7])
    okta = oidc_row(org, "Okta Workforce", "okta-workforce", jit=True)
    saml_row(org, "Entra ID", "entra-id")
    for member in people[:12]:
        linked(okta, member)
    Domain.objects.create(org=org, domain=f"{org.slug}-waiting.example")
    Domain.objects.create(org=org, domain=f"{org.slug}.example", verified_at=timezone.now())
    return {"tokens": made, "okta": okta}


def test_tokens_search_page_and_revoke_after_confirming(page, live_server, owner, estate, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Provisioning")
    table = page.get_by_role("table", name=f"SCIM tokens of {owner.org.name}")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("idp-000")
    expect(rows.first.get_by_role("link", name=owner.user.email)).to_be_visible()
    fits(page, tmp_path, "scim-tokens")

    page.get_by_role("link", name="Next page →").click()
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("idp-050")
    page.get_by_role("link", name="← Previous page").click()
    expect(rows.first).to_contain_text("idp-000")

    page.get_by_label("Show").select_option("failing")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("idp-007")
    expect(rows.first.get_by_test_id("failing")).to_be_visible()

    page.get_by_label("Show").select_option("")
    page.get_by_label("Search tokens").fill("idp-042")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name="Revoke idp-042").click()
    said = page.get_by_test_id("consequences")
    expect(said).to_contain_text("stops provisioning through it")
    expect(said).to_contain_text("59 other SCIM tokens keep working")
    expect(said).to_contain_text("40 members are provisioned by SCIM (40 active)")
    fits(page, tmp_path, "scim-token-revoke")
    page.get_by_role("button", name="Revoke now").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked idp-042: it no longer works.")
    assert ScimToken.objects.for_org(owner.org).get(name="idp-042").revoked_at is not None
    assert ScimToken.objects.for_org(owner.org).filter(revoked_at__isnull=False).count() == 1

    for section in ("Group mappings", "Provisioning log"):
        page.get_by_role("navigation", name="Provisioning").get_by_role("link", name=section).click()
        expect(page.get_by_role("heading", name=section, level=2)).to_be_visible()
        fits(page, tmp_path, f"scim-{section.lower().replace(' ', '-')}")


def test_the_connection_page_copies_what_the_idp_needs(page, live_server, owner, estate, tmp_path):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    nav(page, "Single sign-on")
    connections = page.get_by_role("table", name=f"SSO connections of {owner.org.name}").locator("tbody tr")
    expect(connections).to_have_count(2)
    expect(connections.filter(has_text="Okta Workforce").get_by_test_id("linked")).to_have_text("12")
    fits(page, tmp_path, "sso-connections")

    page.get_by_role("link", name="Okta Workforce").click()
    shown = SsoConnectionSerializer(estate["okta"]).data
    for label, value in (("Redirect URI (sign-in redirect)", shown["redirect_uri"]),
                         ("Back-channel logout URI", shown["backchannel_logout_uri"])):
        button = page.get_by_role("button", name=f"Copy {label}")
        button.click()
        said = button.locator("xpath=..").locator("[data-copy-status]")
        expect(said).to_have_text("Copied to the clipboard.")
        assert page.evaluate("navigator.clipboard.readText()") == value
    fits(page, tmp_path, "sso-connection-detail")

    page.get_by_role("link", name="Delete connection…").click()
    said = page.get_by_test_id("consequences")
    expect(said).to_contain_text("12 people's accounts at this identity provider are linked to it")
    expect(said).to_contain_text("no longer created just in time")
    fits(page, tmp_path, "sso-connection-delete")

    page.goto(f"{live_server.url}/orgs/{owner.org.slug}/sso/domains/")
    waiting = Domain.objects.for_org(owner.org).get(verified_at__isnull=True)
    page.get_by_role("button", name="Copy the TXT record's value").click()
    assert page.evaluate("navigator.clipboard.readText()") == waiting.txt_value
    fits(page, tmp_path, "sso-domains")
    page.get_by_role("link", name=f"Remove {owner.org.slug}.example").click()
    expect(page.get_by_test_id("consequences")).to_contain_text("Home-realm discovery stops")
    fits(page, tmp_path, "sso-domain-remove")
    page.get_by_role("button", name="Remove domain").click()
    # The page's message (the domains' copy buttons have status regions of their own).
    expect(page.locator(".messages")).to_contain_text(f"Removed {owner.org.slug}.example.")
    assert not Domain.objects.for_org(owner.org).filter(verified_at__isnull=False).exists()


def test_a_group_is_mapped_by_typing_its_name_and_a_teams(page, live_server, owner, tmp_path):
    from scim.models import GroupMapping
    from tests.factories import ScimGroupFactory, TeamFactory

    org = owner.org
    for n in range(120):
        ScimGroupFactory(org=org, display_name=f"Engineering {n:03d}")
        TeamFactory(org=org, name=f"Squad {n:03d}")
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, owner.user.email)
    page.goto(f"{live_server.url}/orgs/{org.slug}/provisioning/mappings/")
    group = page.get_by_role("combobox", name="SCIM group")
    group.press_sequentially("Engineering 07", delay=30)
    offered = page.locator("#mapping-group-options option")
    expect(offered).to_have_count(10)  # Engineering 070-079, asked of the API as one types
    group.fill(offered.first.get_attribute("value"))  # what choosing the offered option does
    page.get_by_label("Grants").select_option("team")
    team = page.get_by_label("Team", exact=True)
    team.press_sequentially("Squad 042", delay=30)
    expect(page.locator("#mapping-team-options option")).to_have_count(1)
    team.fill("Squad 042")
    page.get_by_label("Role in the team").select_option("member")
    page.get_by_role("button", name="Add mapping").click()
    expect(page.locator(".messages [role=status], .messages").first).to_be_visible()
    mapping = GroupMapping.objects.for_org(org).get()
    assert (mapping.group.display_name, mapping.team.name) == ("Engineering 070", "Squad 042")
    fits(page, tmp_path, "mappings")
