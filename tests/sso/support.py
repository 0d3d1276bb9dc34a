"""Shared by the SSO tests: a request as the middleware stack leaves it, sharing a test client's
session, and a sign-in through sso.signin as a verified IdP answer would make it."""

from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from audit.context import context_from_request
from sso import signin


def browser_request(client, path="/sso/x/y/oidc/callback/"):
    request = RequestFactory().get(path)
    request.session = client.session
    request.user = AnonymousUser()
    request.audit_context = context_from_request(request)
    return request


def keep_session(client, request):
    """Carry the session the request ended with back into the test client."""
    request.session.save()
    client.cookies["sessionid"] = request.session.session_key


def sso_sign_in(client, connection, assertion, **flow_fields):
    request = browser_request(client)
    flow, state = signin.flow_start(request, connection, **flow_fields)
    flow = signin.flow_take(request, connection, state)
    response = signin.sign_in(request, connection, flow, assertion)
    keep_session(client, request)
    return request, response
