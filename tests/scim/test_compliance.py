"""scim2-tester, the python-scim project's compliance checker, against our server in-process."""

from collections import Counter
from importlib.metadata import version

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from iam_project.wsgi import application
from tests.scim.conftest import BASE

pytestmark = pytest.mark.django_db

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED}


@pytest.fixture
def keep_connections():
    """The WSGI handler closes database connections at the end of each request; inside a test's
    transaction that would end it. Django's own test client detaches the same handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_scim2_tester_reports_no_error_and_no_failure(scim, settings, keep_connections, capsys):
    settings.IAM_SCIM_RATE_LIMIT = 10_000  # the checker sends a few hundred requests in a second
    client = WSGISCIMClient(application, base_url=f"http://localhost{BASE}",
                            headers={"Authorization": f"Bearer {scim.token}"})
    results = check_server(client, raise_exceptions=False)
    counts = Counter(r.status.name for r in results)
    with capsys.disabled():  # shown in every run, CI's included
        print(f"\nscim2-tester {version('scim2-tester')}: {len(results)} checks run: "
              f"{dict(sorted(counts.items()))}")
    failures = [f"{r.status.name} {r.title}: {r.reason}" for r in results if r.status not in PASSING]
    assert not failures, "\n".join(failures)
    assert counts["SUCCESS"] > 20  # the checker really ran (discovery, CRUD, PATCH, queries)
