import os

import pytest
from django.core.cache import cache
from django.db import connection
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIClient

from agents.introspection import forget_seen
from agents.tokens import verified_forget
from iam_project.celery import app as celery_app
from tests.factories import PASSWORD, MemberFactory, OrgFactory, UserFactory, api_key_for


@pytest.fixture(autouse=True, scope="session")
def _celery_in_process():
    # Tasks run in the test process so their effects are visible to assertions, also when
    # CELERY_BROKER_URL points at a real broker; tests/iam_project/test_celery_worker.py drives a real
    # worker through its own app instance.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


def as_outside_requests():
    """Run a block as commands and tasks run in production: no org scope, so a scoped query that
    nobody scoped raises (the autouse fixture below lifts that for plain test code)."""
    return scope()


@pytest.fixture(autouse=True)
def _no_org_scope_in_test_code():
    # Test code reads and writes any org's rows directly. Requests made through a client do not
    # inherit this: TenancyScopeMiddleware starts each with no scope, as in production.
    with scopes_disabled():
        yield


@pytest.fixture(autouse=True)
def _celery_join_flag_reset():
    # An eager task marks the whole process "inside a task" while it runs (Celery's
    # denied_join_result, a process-wide flag, not a thread-local). Race tests run eager tasks from
    # several threads at once, whose save-and-restore of that flag can interleave and leave it set,
    # after which a real result.get() (tests/iam_project/test_celery_worker.py) refuses to wait.
    from celery._state import _set_task_join_will_block

    yield
    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _clear_cache(settings):
    cache.clear()
    forget_seen()
    verified_forget()
    # Login back-off sleeps are real time; tests that exercise it turn it back on themselves.
    settings.IAM_LOGIN_BACKOFF_BASE_SECONDS = 0
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def org(db):
    return OrgFactory()


@pytest.fixture
def owner(org):
    return MemberFactory(org=org, role="owner", user=UserFactory(password=PASSWORD))


@pytest.fixture
def key_client(org):
    """A client authenticated with an org API key holding the given permissions."""

    def make(*permissions, for_org=None):
        _, secret = api_key_for(for_org or org, permissions)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


requires_postgresql = pytest.mark.skipif(
    "postgresql" not in os.environ.get("DATABASE_URL", ""),
    reason="needs PostgreSQL: set DATABASE_URL (make test-services runs the suite against it)",
)
