"""One rule gates both surfaces: from a browser session whose last proof of identity is older than
the re-authentication window, every change to an org (any POST, PUT, PATCH or DELETE on its admin
API or its pages) is refused before anything runs, and so are the reads that hand out the org's
data. Walks every route the project serves."""

import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.views import APIView

from audit.models import AuditEntry
from tests.factories import MemberFactory, OrgFactory, sign_in
from web.pages import OrgPageMixin

pytestmark = pytest.mark.django_db

CHANGING = ("post", "put", "patch", "delete")


def _walk(patterns, namespace="", keys=()):
    """(name, pattern, every path parameter up the include chain) for each named route."""
    for pattern in patterns:
        here = (*keys, *pattern.pattern.regex.groupindex)
        if isinstance(pattern, URLResolver):
            ns = pattern.namespace
            yield from _walk(pattern.url_patterns, f"{namespace}{ns}:" if ns else namespace, here)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield namespace + pattern.name, pattern, here


def _url(name, keys, org):
    return reverse(name, kwargs={key: org.slug if key == "org" else str(uuid.uuid4()) for key in keys})


def _api_changes():
    for name, pattern, keys in _walk(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "cls", None)
        actions = getattr(pattern.callback, "actions", None)
        if view_class is None or not issubclass(view_class, APIView) or "org" not in keys:
            continue
        methods = list(actions) if actions else [m for m in CHANGING if hasattr(view_class, m)]
        for method in methods:
            if method in CHANGING:
                yield name, keys, method


def _page_changes():
    for name, pattern, keys in _walk(get_resolver().url_patterns):
        view = getattr(pattern.callback, "view_class", None)
        if view is None or not issubclass(view, OrgPageMixin):
            continue
        for method in CHANGING:
            if hasattr(view, method):
                yield name, keys, method


@pytest.fixture
def stale(db):
    org = OrgFactory()
    owner = MemberFactory(org=org, role="owner")
    return org, sign_in(Client(), owner.user, mfa=True, auth_age=3600)


def test_every_change_on_the_api_needs_a_fresh_proof(stale):
    org, client = stale
    routes = list(_api_changes())
    assert len(routes) >= 25  # members, teams, roles, agents, connections, runs, keys, SCIM, policy
    problems = []
    for name, keys, method in routes:
        before = AuditEntry.objects.for_org(org).count()
        response = getattr(client, method)(_url(name, keys, org), {}, content_type="application/json")
        body = response.json() if response["Content-Type"].startswith("application/json") else {}
        if response.status_code != 403 or body.get("error") != "reauth_required":
            problems.append(f"{method.upper()} {name}: {response.status_code} {body.get('error')}")
        elif AuditEntry.objects.for_org(org).count() != before + 1:
            problems.append(f"{method.upper()} {name}: the refusal is not on record")
    assert not problems, "\n".join(problems)


def test_every_change_on_the_pages_needs_a_fresh_proof(stale):
    org, client = stale
    routes = list(_page_changes())
    assert len(routes) >= 15
    problems = []
    for name, keys, method in routes:
        url = _url(name, keys, org)
        response = getattr(client, method)(url, {})
        if response.status_code != 302 or not response["Location"].startswith("/reauth/"):
            problems.append(f"{method.upper()} {name}: {response.status_code} {response.get('Location')}")
    assert not problems, "\n".join(problems)


def test_reads_that_hand_out_the_org_need_a_fresh_proof_on_both_surfaces(stale):
    org, client = stale
    api = client.get(f"/api/v1/orgs/{org.slug}/exports/access-review.csv")
    page = client.get(f"/orgs/{org.slug}/access-review/export/")
    assert api.status_code == 403 and api.json()["error"] == "reauth_required"
    assert page.status_code in (302, 404)
    if page.status_code == 302:
        assert page["Location"].startswith("/reauth/")


def test_a_fresh_session_passes_the_gate(db):
    org = OrgFactory()
    owner = MemberFactory(org=org, role="owner")
    client = sign_in(Client(), owner.user, mfa=True)
    response = client.post(f"/api/v1/orgs/{org.slug}/teams", {"name": "Fresh"},
                           content_type="application/json")
    assert response.status_code == 201
