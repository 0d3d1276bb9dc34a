"""userName is unique per org by its normalised key (NFKC, case folding, no format characters), on
SQLite and PostgreSQL alike, and `userName eq` finds a person by the same key (RFC 7643: caseExact
false)."""

import threading
from urllib.parse import quote

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from scim.models import ScimUser
from scim.protocol.errors import ERROR_SCHEMA
from scim.usernames import user_name_key
from tests.factories import MemberFactory, OrgFactory
from tests.helpers import audit_events
from tests.scim.conftest import scim_for, user_body

pytestmark = pytest.mark.django_db

VARIANTS = [
    ("ÄLICE", "älice"),
    ("A\u0308lice", "älice"),  # a decomposed Ä
    ("ǅ", "ǆ"),  # title case and lower case of one letter
    ("Ǆemal", "dže\u200bmal"),
    ("alice", "al\u200bice"),  # zero width space
    ("alice", "\u200dalice\u2060"),  # zero width joiner, word joiner
    ("alice", "ali\u00adce"),  # soft hyphen
    ("alice", "\u202ealice"),  # right-to-left override
    ("alice", "ＡＬＩＣＥ"),  # full-width letters
    ("straße", "STRASSE"),
    ("ﬁona", "FIONA"),  # a ligature
    ("e\u0301ve", "e\u200b\u0301ve"),  # the accent composes once the zero width space is gone
]
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _created(response) -> dict:
    assert response.status_code == 201, response.content
    return response.json()


def _body(user_name: str) -> dict:
    return user_body(user_name, emails=[{"value": f"{abs(hash(user_name))}@example.com", "primary": True}])


def _uniqueness(response) -> None:
    assert response.status_code == 409, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert (body["status"], body["scimType"]) == ("409", "uniqueness")


@pytest.mark.parametrize("first, second", VARIANTS)
def test_a_variant_of_a_user_name_is_a_409_and_creates_nothing(scim, first, second):
    created = _created(scim.post("/Users", _body(first)))
    _uniqueness(scim.post("/Users", _body(second)))
    assert [u.user_name for u in ScimUser.objects.for_org(scim.org)] == [first]
    assert ScimUser.objects.for_org(scim.org).get().user_name_key == user_name_key(second)
    assert audit_events(scim.org, "scim.user_created").count() == 1
    rejected = audit_events(scim.org, "scim.request_rejected").get().data
    assert (rejected["method"], rejected["status"], rejected["scim_type"]) == ("POST", 409, "uniqueness")
    assert scim.get(f"/Users/{created['id']}").json()["userName"] == first


@pytest.mark.parametrize("first, second", VARIANTS)
def test_user_name_eq_finds_the_person_by_the_same_key(scim, first, second):
    created = _created(scim.post("/Users", _body(first)))
    _created(scim.post("/Users", _body("someone.else")))
    for expression in (f'userName eq "{second}"', f'userName eq "{first}"'):
        body = scim.get(f"/Users?filter={quote(expression)}").json()
        assert [r["id"] for r in body["Resources"]] == [created["id"]] and body["totalResults"] == 1
    body = scim.get("/Users?filter=" + quote(f'userName ne "{second}"')).json()
    assert [r["userName"] for r in body["Resources"]] == ["someone.else"]
    search = scim.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                    "filter": f'userName eq "{second}"'}).json()
    assert [r["id"] for r in search["Resources"]] == [created["id"]]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_renaming_to_a_variant_of_another_user_name_is_a_409_and_changes_nothing(scim, method):
    _created(scim.post("/Users", _body("alice")))
    bob = _created(scim.post("/Users", _body("bob")))
    if method == "PUT":
        response = scim.put(f"/Users/{bob['id']}", _body("AL\u200bICE"))
    else:
        response = scim.patch(f"/Users/{bob['id']}", [{"op": "replace", "path": "userName",
                                                        "value": "ali\u00adce"}])
    _uniqueness(response)
    row = ScimUser.objects.for_org(scim.org).get(pk=bob["id"])
    assert (row.user_name, row.user_name_key, row.version) == ("bob", "bob", 1)
    assert not audit_events(scim.org, "scim.user_updated").exists()


def test_a_user_may_take_another_spelling_of_its_own_user_name(scim):
    alice = _created(scim.post("/Users", _body("alice")))
    rename = [{"op": "replace", "path": "userName", "value": "ＡＬＩＣＥ"}]
    response = scim.patch(f"/Users/{alice['id']}", rename)
    assert response.status_code == 200, response.content
    row = ScimUser.objects.for_org(scim.org).get(pk=alice["id"])
    assert (row.user_name, row.user_name_key, row.version) == ("ＡＬＩＣＥ", "alice", 2)


def test_another_org_may_use_the_same_user_name(scim):
    other = scim_for()
    _created(other.post("/Users", _body("alice")))
    _created(scim.post("/Users", _body("ALICE")))


def test_a_user_name_too_long_once_normalised_is_invalid_value(scim):
    # U+FDFA is one character and eighteen once NFKC has read it.
    response = scim.post("/Users", _body("\ufdfa" * 60))
    assert response.status_code == 400, response.content
    assert response.json()["schemas"] == [ERROR_SCHEMA] and response.json()["scimType"] == "invalidValue"
    assert not ScimUser.objects.for_org(scim.org).exists()


def test_the_database_refuses_a_second_row_with_the_key(scim):
    first = _created(scim.post("/Users", _body("alice")))
    row = ScimUser.objects.for_org(scim.org).get(pk=first["id"])
    other = MemberFactory(org=scim.org)
    with pytest.raises(IntegrityError), transaction.atomic():
        ScimUser.objects.for_org(scim.org).create(org=scim.org, membership=other, user_name="al\u200bice",
                                                  user_name_key=row.user_name_key)


def test_the_key_of_a_key_is_itself():
    for first, second in VARIANTS:
        assert user_name_key(user_name_key(first)) == user_name_key(first) == user_name_key(second)
    assert user_name_key("ǅ") == "dž" and user_name_key("al\u200bice") == "alice"


@pytest.mark.django_db(transaction=True)
def test_two_variants_at_once_make_one_user():
    if connection.vendor != "postgresql":
        pytest.skip("race cases run on PostgreSQL (SQLite serialises every writer)")
    scim = scim_for()
    barrier, statuses = threading.Barrier(2), []

    def create(user_name):
        try:
            barrier.wait(5)
            client = Client()
            response = client.post("/scim/v2/Users", _body(user_name), content_type="application/scim+json",
                                   HTTP_AUTHORIZATION=f"Bearer {scim.token}")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(name,)) for name in ("Ålice", "A\u030alice")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409]
    assert ScimUser.objects.for_org(scim.org).count() == 1


# --- the migration that introduced the key ---------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_every_key_and_the_oldest_of_a_collision_keeps_it():
    org, other_org = OrgFactory(), OrgFactory()
    members = [MemberFactory(org=org) for _ in range(4)] + [MemberFactory(org=other_org)]
    executor = MigrationExecutor(connection)
    executor.migrate([("scim", "0008_directory_deactivation_on_membership")])
    old = executor.loader.project_state([("scim", "0008_directory_deactivation_on_membership")]).apps
    OldScimUser = old.get_model("scim", "ScimUser")
    names = ["alice", "al\u200bice", "ＡＬＩＣＥ", "Bob", "alice"]  # three spellings, then two people
    rows = []
    for member, name in zip(members, names, strict=True):
        rows.append(OldScimUser.objects.create(org_id=member.org_id, membership_id=member.pk, user_name=name))
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    keys = dict(ScimUser.objects.unscoped().values_list("pk", "user_name_key"))
    assert [keys[r.pk] for r in rows] == ["alice", None, None, "bob", "alice"]
    names_after = dict(ScimUser.objects.unscoped().values_list("pk", "user_name"))
    assert names_after == {r.pk: r.user_name for r in rows}
    # The rows left without a key still work: one can be deactivated, and renamed to a free name.
    scim = scim_for(org)
    second = str(rows[1].pk)
    response = scim.patch(f"/Users/{second}", [{"op": "replace", "path": "active", "value": False}])
    assert response.status_code == 200, response.content
    assert ScimUser.objects.for_org(org).get(pk=second).user_name_key is None
    _uniqueness(scim.patch(f"/Users/{second}", [{"op": "replace", "path": "userName", "value": "ALICE"}]))
    response = scim.patch(f"/Users/{second}", [{"op": "replace", "path": "userName", "value": "alice.two"}])
    assert response.status_code == 200, response.content
    assert ScimUser.objects.for_org(org).get(pk=second).user_name_key == "alice.two"
    body = scim.get("/Users?filter=" + quote('userName eq "al\u200bice"')).json()
    assert [r["id"] for r in body["Resources"]] == [str(rows[0].pk)]


def test_a_row_made_without_the_protocol_has_its_key_too(scim):
    member = MemberFactory(org=scim.org)
    row = ScimUser.objects.for_org(scim.org).create(org=scim.org, membership=member, user_name="Ｂob")
    assert row.user_name_key == "bob"
    _uniqueness(scim.post("/Users", _body("BOB")))
