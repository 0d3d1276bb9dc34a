"""Copy buttons (templates/includes/copy_button.html, static/js/console.js data-copy) beside each value
an admin pastes elsewhere: the new SCIM token and the SCIM base URL, what the IdP needs of a
connection, and a domain's TXT record. Each button names the field that holds exactly that value."""

import re
from html import unescape

import pytest

from scim.api import scim_base_url
from scim.tokens import scim_token_authenticate
from sso.api import SsoConnectionSerializer
from sso.models import Domain
from tests.provisioning_console.conftest import html, oidc_row, saml_row, scim_url, sso_url

pytestmark = pytest.mark.django_db


def copied(page: str) -> dict[str, str]:
    """What each copy button on the page copies: its target's id -> the target's value or text."""
    values = {}
    for target in re.findall(r'data-copy="#([^"]+)"', page):
        field = re.search(rf'<(input|code)[^>]*\bid="{re.escape(target)}"[^>]*>', page)
        assert field, f"no field #{target}"
        if field.group(1) == "input":
            values[target] = unescape(re.search(r'value="([^"]*)"', field.group(0)).group(1))
        else:
            values[target] = unescape(page[field.end():].split("</code>", 1)[0])
    return values


def test_the_new_token_page_copies_the_token_and_the_base_url(org, client):
    created = client.post(scim_url("tokens", org), {"name": "Okta"}, follow=True)
    page = html(created)
    buttons = copied(page)
    assert set(buttons) == {"scim-token", "scim-base-url"}
    assert buttons["scim-base-url"] == scim_base_url()
    assert buttons["scim-token"].startswith("scim_")
    assert scim_token_authenticate(buttons["scim-token"]) is not None  # the very token, whole
    assert "Copy<span class=\"visually-hidden\"> the token</span>" in page


def test_an_oidc_connection_page_copies_its_redirect_and_back_channel_logout_uris(org, client):
    okta = oidc_row(org)
    shown = SsoConnectionSerializer(okta).data
    buttons = copied(html(client.get(sso_url("connection-detail", org, pk=okta.pk))))
    assert buttons == {"idp-redirect-uri": shown["redirect_uri"],
                       "idp-backchannel-logout-uri": shown["backchannel_logout_uri"]}


def test_a_saml_connection_page_copies_its_entity_id_acs_url_and_metadata_url(org, client):
    entra = saml_row(org)
    shown = SsoConnectionSerializer(entra).data
    buttons = copied(html(client.get(sso_url("connection-detail", org, pk=entra.pk))))
    assert buttons == {"idp-sp-entity-id": shown["sp_entity_id"], "idp-sp-acs-url": shown["sp_acs_url"],
                       "idp-sp-metadata-url": shown["sp_metadata_url"]}


def test_the_new_connection_page_offers_no_copy_before_the_slug_is_chosen(org, client):
    page = html(client.get(sso_url("connection-new", org, protocol="oidc")))
    assert "&lt;slug&gt;" in page and "data-copy" not in page


def test_a_domain_waiting_for_verification_copies_its_txt_record_name_and_value(org, client):
    first = Domain.objects.create(org=org, domain=f"a.{org.slug}.example")
    second = Domain.objects.create(org=org, domain=f"b.{org.slug}.example")
    buttons = copied(html(client.get(sso_url("domains", org))))
    assert buttons == {f"txt-name-{first.pk}": first.txt_name, f"txt-value-{first.pk}": first.txt_value,
                       f"txt-name-{second.pk}": second.txt_name, f"txt-value-{second.pk}": second.txt_value}
