"""The access-review export lists every kind of principal: people (with the name their org's IdP gave
them over SCIM), agents, org API keys and SCIM tokens; it is UTF-8, says so, and offers a BOM for
spreadsheets that need one."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.exports import COLUMNS, access_review_rows
from audit.models import AuditEntry
from core.permissions import Perm
from iam_project.api_urls import ACCESS_REVIEW_SOURCES
from tests.factories import (
    MemberFactory,
    OrgFactory,
    ScimTokenFactory,
    ScimUserFactory,
    UserFactory,
    api_key_for,
    sign_in,
)

pytestmark = pytest.mark.django_db

CONTRACT_COLUMNS = [
    "principal_type", "principal_id", "name", "email", "status", "source", "org_role", "custom_roles",
    "teams", "effective_permissions", "mfa_enrolled", "last_login_at", "created_at", "owner", "scopes",
    "audiences", "secret_rotated_at",
]


def _get(client, org, query=""):
    response = client.get(f"/api/v1/orgs/{org.slug}/exports/access-review.csv{query}")
    return response, b"".join(response.streaming_content) if response.status_code == 200 else response.content


def _rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def _by_id(rows) -> dict:
    return {row["principal_id"]: row for row in rows}


def test_the_columns_are_the_contracts_in_its_order(org, key_client):
    assert COLUMNS == CONTRACT_COLUMNS
    _, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org)
    assert body.decode("utf-8").splitlines()[0] == ",".join(CONTRACT_COLUMNS)


def test_org_api_keys_are_listed_with_what_they_can_do_now(org, key_client):
    maker = MemberFactory(org=org, role="member", user=UserFactory(email="maker@x.test"))
    key, _ = api_key_for(org, [Perm.MEMBER_READ, Perm.ORG_DELETE], created_by=maker.user, name="=deploy")
    revoked, _ = api_key_for(org, [Perm.MEMBER_READ], created_by=maker.user, name="old",
                             revoked_at=timezone.now())
    orphan_maker = MemberFactory(org=org, role="owner")
    orphan, _ = api_key_for(org, [Perm.MEMBER_READ], created_by=orphan_maker.user, name="orphan")
    orphan_maker.status = "suspended"
    orphan_maker.save()
    key.last_used_at = timezone.now()
    key.save()

    response, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org)
    rows = _by_id(_rows(body))

    assert rows[str(key.pk)] == {
        "principal_type": "api_key", "principal_id": str(key.pk), "name": "'=deploy", "email": "",
        "status": "active", "source": "manual", "org_role": "", "custom_roles": "", "teams": "",
        # Declared member:read and org:delete; a member holds the first, not the second.
        "effective_permissions": "member:read", "mfa_enrolled": "",
        "last_login_at": key.last_used_at.isoformat(),
        "created_at": key.created_at.isoformat(), "owner": "maker@x.test", "scopes": "member:read org:delete",
        "audiences": "", "secret_rotated_at": key.created_at.isoformat(),
    }
    state = {pk: (row["status"], row["effective_permissions"]) for pk, row in rows.items()}
    assert state[str(revoked.pk)] == ("revoked", "")
    assert state[str(orphan.pk)] == ("active", "")
    assert sum(r["principal_type"] == "api_key" for r in rows.values()) == 4  # and the exporting key
    entry = AuditEntry.objects.for_org(org).latest("seq")
    assert entry.event_name == "export.access_review" and entry.data == {"rows": len(rows)}


def test_scim_tokens_are_listed(org, key_client):
    owner = MemberFactory(org=org, role="owner", user=UserFactory(email="owner@x.test"))
    live = ScimTokenFactory(org=org, name="Okta", created_by=owner.user, last_used_at=timezone.now())
    ending = ScimTokenFactory(org=org, name="Entra", created_by=owner.user,
                              expires_at=timezone.now() - timedelta(minutes=1))
    ScimTokenFactory(org=OrgFactory(), name="Other org")

    _, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org)
    rows = _rows(body)

    tokens = [r for r in rows if r["principal_type"] == "scim_token"]
    assert [t["name"] for t in tokens] == ["Okta", "Entra"]
    assert tokens[0] == {
        "principal_type": "scim_token", "principal_id": str(live.pk), "name": "Okta", "email": "",
        "status": "active", "source": "manual", "org_role": "", "custom_roles": "", "teams": "",
        "effective_permissions": "Users Groups", "mfa_enrolled": "",
        "last_login_at": live.last_used_at.isoformat(),
        "created_at": live.created_at.isoformat(), "owner": "owner@x.test", "scopes": "Users Groups",
        "audiences": "", "secret_rotated_at": live.created_at.isoformat(),
    }
    assert (tokens[1]["principal_id"], tokens[1]["status"], tokens[1]["effective_permissions"]) == (
        str(ending.pk), "expired", "")
    assert rows[-1]["principal_type"] == "scim_token"  # after people, agents and keys


def test_a_scim_token_whose_maker_can_no_longer_mint_one_can_do_nothing(org, key_client):
    member = MemberFactory(org=org, role="member")
    token = ScimTokenFactory(org=org, created_by=member.user)

    _, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org)

    assert _by_id(_rows(body))[str(token.pk)]["effective_permissions"] == ""


@pytest.mark.parametrize("scim,expected", [
    ({"display_name": "Zoë Ødegård"}, "Zoë Ødegård"),
    ({"name": {"formatted": "Dr. Åsa Öberg"}}, "Dr. Åsa Öberg"),
    ({"name": {"givenName": "Jürgen", "familyName": "Müller"}}, "Jürgen Müller"),
    ({"display_name": "=cmd|' /C calc'!A0"}, "'=cmd|' /C calc'!A0"),
    ({}, "Account Name"),
])
def test_scim_users_carry_the_name_their_idp_gave(org, key_client, scim, expected):
    member = MemberFactory(org=org, source="scim", user=UserFactory(display_name="Account Name"))
    ScimUserFactory(membership=member, **scim)

    response, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org)

    assert _by_id(_rows(body))[str(member.user.pk)]["name"] == expected


def test_the_export_is_utf8_and_says_so(org, key_client):
    member = MemberFactory(org=org, user=UserFactory(display_name="José 日本 🚀"))

    response, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert not body.startswith(b"\xef\xbb\xbf")
    assert _by_id(_rows(body))[str(member.user.pk)]["name"] == "José 日本 🚀"


def test_a_bom_is_added_on_request_for_spreadsheets(org, key_client):
    client = key_client(Perm.ACCESS_REVIEW_EXPORT)
    MemberFactory(org=org, user=UserFactory(display_name="Zoë"))

    response, body = _get(client, org, "?bom=1")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert body.startswith(b"\xef\xbb\xbf") and body[3:].decode("utf-8").startswith("principal_type,")
    assert "Zoë" in body.decode("utf-8-sig")


def test_the_page_offers_the_export_with_a_bom_for_excel(org, owner):
    client = Client()
    sign_in(client, owner.user)
    body = client.get(reverse("audit:access-review", kwargs={"org": org.slug})).content.decode()
    export = f"/api/v1/orgs/{org.slug}/exports/access-review.csv"
    assert f'href="{export}"' in body and f'href="{export}?bom=1"' in body
    assert body_starts_with_bom(client.get(f"{export}?bom=1"))


def body_starts_with_bom(response) -> bool:
    return response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\xef\xbb\xbf")


def test_a_bad_bom_value_is_refused_and_nothing_is_recorded(org, key_client):
    response, body = _get(key_client(Perm.ACCESS_REVIEW_EXPORT), org, "?bom=perhaps")

    assert response.status_code == 400 and response.json()["error"] == "validation_error"
    assert not AuditEntry.objects.for_org(org).filter(event_name="export.access_review").exists()


def test_keys_and_tokens_cost_the_same_queries_however_many(org):
    def populate(target, n):
        owner = MemberFactory(org=target, role="owner")
        for i in range(n):
            api_key_for(target, [Perm.MEMBER_READ], created_by=MemberFactory(org=target).user,
                        name=f"k{i}")
            ScimTokenFactory(org=target, created_by=owner.user, name=f"t{i}")

    populate(org, 1)
    with CaptureQueriesContext(connection) as one:
        assert len(list(access_review_rows(org, ACCESS_REVIEW_SOURCES))) == 1 + 2 + 1 + 1
    other = OrgFactory()
    populate(other, 8)
    with CaptureQueriesContext(connection) as many:
        assert len(list(access_review_rows(other, ACCESS_REVIEW_SOURCES))) == 1 + 9 + 8 + 8
    assert len(many.captured_queries) == len(one.captured_queries)
