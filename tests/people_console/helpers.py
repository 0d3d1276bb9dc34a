"""Shared by the people-console tests: a signed-in client and page fetching."""

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import MemberFactory, sign_in


def client_of(membership) -> Client:
    return sign_in(Client(), membership.user, mfa=True)


def owner_client(org):
    owner = MemberFactory(org=org, role="owner")
    return client_of(owner), owner


def body(client, path, expect=200, **params) -> str:
    response = client.get(path, params)
    assert response.status_code == expect, (response.status_code, path)
    return response.content.decode()


def queries_of(client, path, **params) -> int:
    client.get(path, params)  # warm the per-process caches (session, policy)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, params)
    assert response.status_code == 200, response.status_code
    return len(queries)
