"""Revoking a SCIM token, deleting an SSO connection and removing a domain each ask first, saying what
stops and for how many people; a POST without the confirmation changes nothing, and with it the
effect happens."""

import datetime
import re

import pytest
from django.utils import timezone

from accounts.models import SecurityPolicy
from sso.models import Connection, Domain
from tests.factories import MemberFactory, ScimUserFactory
from tests.helpers import audit_events
from tests.provisioning_console.conftest import (
    html,
    linked,
    oidc_row,
    saml_row,
    scim_url,
    sso_url,
    token,
    verified_domain,
)

pytestmark = pytest.mark.django_db


def consequences(response) -> str:
    assert response.status_code == 200, response.status_code
    part = html(response).split('data-testid="consequences"')[1].split("</ul>")[0]
    return " ".join(re.sub(r"<[^>]+>", " ", part).split())


# --- SCIM tokens ----------------------------------------------------------------------------------


def test_revoking_the_last_working_token_says_nobody_is_provisioned_and_counts_the_people(org, client, owner):
    only = token(org, "Okta", maker=owner)
    token(org, "old", maker=owner, revoked_at=timezone.now())
    token(org, "ended", maker=owner, expires_at=timezone.now() - datetime.timedelta(hours=1))
    for status in ("active", "active", "suspended"):
        ScimUserFactory(membership=MemberFactory(org=org, status=status, source="scim"))
    MemberFactory(org=org)  # invited by hand: not the IdP's
    said = consequences(client.get(scim_url("token-revoke", org, pk=only.pk)))
    assert "stops provisioning through it" in said and f"scim_{only.lookup_id}_…" in said
    assert "It is the only SCIM token of" in said and "nobody is provisioned or deprovisioned" in said
    assert "3 members are provisioned by SCIM (2 active)" in said


def test_revoking_one_of_several_says_how_many_keep_working(org, client, owner):
    first = token(org, "Okta", maker=owner)
    token(org, "Okta next", maker=owner)
    token(org, "Okta rotating", maker=owner, expires_at=timezone.now() + datetime.timedelta(hours=1))
    said = consequences(client.get(scim_url("token-revoke", org, pk=first.pk)))
    assert "2 other SCIM tokens keep working" in said and "only SCIM token" not in said
    assert "0 members are provisioned by SCIM (0 active)" in said


def test_a_revoke_without_the_confirmation_changes_nothing_and_with_it_revokes(org, client, owner):
    okta = token(org, "Okta", maker=owner)
    path = scim_url("token-revoke", org, pk=okta.pk)
    unconfirmed = client.post(path, {"grace_seconds": "0"})
    assert unconfirmed.status_code == 200 and "Revoke SCIM token “Okta”?" in html(unconfirmed)
    okta.refresh_from_db()
    assert okta.revoked_at is None and not audit_events(org, "scim.token_revoked")
    done = client.post(path, {"grace_seconds": "0", "confirm": "yes"})
    assert done.status_code == 302
    okta.refresh_from_db()
    assert okta.revoked_at is not None and len(audit_events(org, "scim.token_revoked")) == 1


def test_a_revoked_token_has_nothing_to_confirm(org, client, owner):
    gone = token(org, "gone", maker=owner, revoked_at=timezone.now())
    page = html(client.get(scim_url("token-revoke", org, pk=gone.pk)))
    assert "no longer works" in page and 'name="confirm"' not in page


# --- SSO connections ------------------------------------------------------------------------------


def test_deleting_a_connection_counts_the_people_linked_and_says_jit_stops(org, client, owner):
    okta = oidc_row(org, jit=True)
    other = saml_row(org)
    for _ in range(3):
        linked(okta, MemberFactory(org=org))
    linked(other, MemberFactory(org=org))
    said = consequences(client.get(sso_url("connection-delete", org, pk=okta.pk)))
    assert "3 people's accounts at this identity provider are linked to it (3 members of" in said
    assert "no longer created just in time" in said
    assert "1 other enabled connection keeps working" in said
    plain = consequences(client.get(sso_url("connection-delete", org, pk=other.pk)))
    assert "1 person's account" in plain and "just in time" not in plain


def test_the_last_connection_under_sso_required_cannot_be_deleted_and_the_page_says_so(org, client):
    okta = oidc_row(org)
    oidc_row(org, "Off", "off", enabled=False)
    SecurityPolicy.objects.update_or_create(org=org, defaults={"sso_required": True})
    page = client.get(sso_url("connection-delete", org, pk=okta.pk))
    assert 'data-testid="blocked"' in html(page) and 'name="confirm"' not in html(page)
    assert "deleting it is refused while it is the last enabled connection" in consequences(page)
    refused = client.post(sso_url("connection-delete", org, pk=okta.pk), {"confirm": "yes"})
    assert refused.status_code == 409 and Connection.objects.for_org(org).filter(pk=okta.pk).exists()
    second = oidc_row(org, "Second", "second")
    allowed = client.get(sso_url("connection-delete", org, pk=okta.pk))
    assert 'data-testid="blocked"' not in html(allowed)
    assert "members then sign in through the 1 other enabled connection" in consequences(allowed)
    assert second.pk


def test_a_delete_without_the_confirmation_changes_nothing_and_with_it_deletes(org, client):
    okta = oidc_row(org)
    path = sso_url("connection-delete", org, pk=okta.pk)
    unconfirmed = client.post(path)
    assert unconfirmed.status_code == 200 and 'data-testid="consequences"' in html(unconfirmed)
    assert Connection.objects.for_org(org).filter(pk=okta.pk).exists()
    assert not audit_events(org, "sso.connection_deleted")
    assert client.post(path, {"confirm": "yes"}).status_code == 302
    assert not Connection.objects.for_org(org).filter(pk=okta.pk).exists()
    assert len(audit_events(org, "sso.connection_deleted")) == 1


# --- Domains ----------------------------------------------------------------------------------------


def test_removing_a_verified_domain_says_routing_and_linking_stop_with_counts(org, client):
    domain = verified_domain(org, f"{org.slug}.example")
    okta = oidc_row(org, jit=True)
    oidc_row(org, "No JIT", "nojit")
    at = [MemberFactory(org=org, user__email=f"p{n}@{org.slug}.example") for n in range(2)]
    MemberFactory(org=org, user__email="elsewhere@other.example")
    linked(okta, at[0])
    said = consequences(client.get(sso_url("domain-remove", org, pk=domain.pk)))
    assert "Home-realm discovery stops" in said
    assert "no longer trusted for email linking" in said
    assert "1 person's IdP account is already linked under an address there and keeps signing in" in said
    assert "no longer created just in time by the 1 connection that creates them" in said
    # The owner's address is at owner@<slug>.example too.
    assert "3 members have addresses at" in said


def test_an_unverified_domain_says_nothing_depends_on_it(org, client):
    domain = Domain.objects.create(org=org, domain=f"{org.slug}.example")
    page = html(client.get(sso_url("domain-remove", org, pk=domain.pk)))
    assert "nothing depends on it yet" in page and "Home-realm discovery" not in page


def test_a_removal_without_the_confirmation_changes_nothing_and_with_it_removes(org, client):
    domain = verified_domain(org, f"{org.slug}.example")
    path = sso_url("domain-remove", org, pk=domain.pk)
    unconfirmed = client.post(path)
    assert unconfirmed.status_code == 200 and Domain.objects.for_org(org).filter(pk=domain.pk).exists()
    assert not audit_events(org, "sso.domain_removed")
    assert client.post(path, {"confirm": "yes"}).status_code == 302
    assert not Domain.objects.for_org(org).filter(pk=domain.pk).exists()
