"""Every list of the admin API is paged (cursor pages, at most MAX_PAGE_SIZE rows), and lists of
things with names or emails take `?q=`."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import Membership, User
from core.permissions import Perm
from tests.factories import MemberFactory, UserFactory, api_key_for
from web.api import OrgScopedViewSet
from web.pagination import MAX_PAGE_SIZE

pytestmark = pytest.mark.django_db


def _members(org, n):
    users = User.objects.bulk_create(User(email=f"person{i:04}@example.com", display_name=f"Person {i}",
                                          password="!") for i in range(n))
    Membership.objects.bulk_create(Membership(org=org, user=u, role="viewer") for u in users)


def _pages(client, url):
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        body = response.json()
        assert len(body["results"]) <= MAX_PAGE_SIZE
        seen += body["results"]
        url, pages = body["next"], pages + 1
    return seen, pages


def test_a_thousand_members_come_in_pages_and_every_one_exactly_once(org, django_assert_max_num_queries):
    # The key's creator is the org's first member; the other 999 follow.
    creator = MemberFactory(org=org, role="owner", user=UserFactory(email="person-key-maker@example.com"))
    _, secret = api_key_for(org, [Perm.MEMBER_READ], created_by=creator.user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    _members(org, 999)
    first = client.get(f"/api/v1/orgs/{org.slug}/members").json()
    assert len(first["results"]) == 50 and first["next"] and first["previous"] is None
    seen, pages = _pages(client, f"/api/v1/orgs/{org.slug}/members?page_size=1000")  # asked for more
    assert pages == 5 and len(seen) == 1000 and len({m["id"] for m in seen}) == 1000
    assert [m["email"] for m in seen] == sorted(m["email"] for m in seen)  # oldest first, as created
    with django_assert_max_num_queries(10):  # a page costs the same whatever the org's size
        client.get(f"/api/v1/orgs/{org.slug}/members?page_size=200")


def test_q_finds_members_by_email_or_name_and_is_bounded(org, key_client):
    _members(org, 30)
    client = key_client(Perm.MEMBER_READ)
    found = client.get(f"/api/v1/orgs/{org.slug}/members?q=PERSON0012").json()["results"]
    assert [m["email"] for m in found] == ["person0012@example.com"]
    by_name = client.get(f"/api/v1/orgs/{org.slug}/members?q=Person 2").json()["results"]
    assert {m["email"] for m in by_name} == {f"person{i:04}@example.com" for i in [2, *range(20, 30)]}
    too_long = client.get(f"/api/v1/orgs/{org.slug}/members?q={'x' * 101}")
    assert too_long.status_code == 400 and "q" in too_long.json()["fields"]


def _viewsets():
    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
                yield pattern.callback
    return {callback.cls for callback in walk(get_resolver().url_patterns)
            if issubclass(callback.cls, OrgScopedViewSet) and "list" in (callback.actions or {}).values()}


def test_every_list_of_the_admin_api_is_paged_in_a_declared_order():
    viewsets = _viewsets()
    assert len(viewsets) >= 10
    for viewset in viewsets:
        assert viewset.pagination_class is not None, viewset.__name__
        paginator = viewset.pagination_class()
        assert paginator.max_page_size and paginator.max_page_size <= 500, viewset.__name__
        assert viewset.list_ordering or getattr(paginator, "ordering", None), viewset.__name__
