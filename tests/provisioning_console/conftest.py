"""An org for the provisioning and SSO console tests: SCIM tokens in bulk (rows as scim.tokens writes
them), SCIM refusals in the audit log as the SCIM endpoint writes them, SSO connections, identities and
domains, and the query counter for "the same queries whatever the size"."""

import datetime
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.events import AuditEvent, Outcome
from scim.models import ScimToken
from sso.models import Connection, Domain, Identity
from tests.agents_console.conftest import entries, queries  # noqa: F401 (the tests import it from here)
from tests.factories import MemberFactory, UserFactory, api_key_for, sign_in

BATCH = 500


def scim_url(name, org, **kwargs):
    return reverse(f"provisioning:{name}", kwargs={"org": org.slug, **kwargs})


def sso_url(name, org, **kwargs):
    return reverse(f"sso:{name}", kwargs={"org": org.slug, **kwargs})


def api_path(org, name) -> str:
    return f"/api/v1/orgs/{org.slug}/{name}/"


def api_client(org, perms) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, list(perms))[1]}")
    return client


def html(response) -> str:
    return response.content.decode()




def tokens_bulk(org, count, *, maker, prefix="idp", **fields) -> list[ScimToken]:
    """`count` SCIM tokens `{prefix}-{n:03d}` made by `maker` (a membership), a minute apart (the
    first the newest), with `fields` on each (last_used_at, revoked_at, expires_at, ...)."""
    now = timezone.now()
    rows = [ScimToken(org=org, name=f"{prefix}-{n:03d}", lookup_id=uuid.uuid4().hex, secret_hash="0" * 64,
                      hash_kid="x", created_by=maker.user, created_at=now - datetime.timedelta(minutes=n + 1),
                      **fields)
            for n in range(count)]
    return ScimToken.objects.bulk_create(rows, batch_size=BATCH)


def token(org, name, *, maker, age_days=2, **fields) -> ScimToken:
    return ScimToken.objects.create(org=org, name=name, lookup_id=uuid.uuid4().hex, secret_hash="0" * 64,
                                    hash_kid="x", created_by=maker.user,
                                    created_at=timezone.now() - datetime.timedelta(days=age_days), **fields)


def refused(org, token, *, days_ago=0, event=AuditEvent.SCIM_AUTH_FAILED):
    """A refusal of `token` as the SCIM endpoint records it (the token as actor)."""
    row = {"event": event, "actor": ("scim", str(token.pk), token.name), "outcome": Outcome.FAILURE,
           "ts": timezone.now() - datetime.timedelta(days=days_ago)}
    if event == AuditEvent.SCIM_AUTH_FAILED:
        row.update(target=("scimtoken", str(token.pk)), data={"reason": "revoked"})
    else:
        row.update(outcome=Outcome.DENIED, data={"method": "POST", "resource": "/scim/v2/Users",
                                                  "status": 409, "scim_type": "uniqueness", "detail": "x"})
    entries(org, [row])


def oidc_row(org, name="Okta", slug="okta", **fields) -> Connection:
    return Connection.objects.create(org=org, name=name, slug=slug, protocol="oidc",
                                     issuer=f"https://{slug}.idp.example", client_id=f"{slug}-client",
                                     **fields)


def saml_row(org, name="Entra", slug="entra", **fields) -> Connection:
    return Connection.objects.create(org=org, name=name, slug=slug, protocol="saml",
                                     idp_entity_id=f"https://{slug}.idp.example/",
                                     idp_sso_url=f"https://{slug}.idp.example/sso", **fields)


def linked(connection, member, *, email=None) -> Identity:
    return Identity.objects.create(org=connection.org, connection=connection, issuer=connection.issuer or "x",
                                   subject=f"sub-{member.pk}", user=member.user,
                                   email=email or member.user.email)


def verified_domain(org, name) -> Domain:
    return Domain.objects.create(org=org, domain=name, verified_at=timezone.now())


@pytest.fixture
def owner(org):
    return MemberFactory(org=org, role="owner", user=UserFactory(email=f"owner@{org.slug}.example"))


@pytest.fixture
def client(owner) -> Client:
    return sign_in(Client(), owner.user, mfa=True)
