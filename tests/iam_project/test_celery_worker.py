"""A real Celery worker, started as a subprocess, runs `iam.ping` taken from Redis.

This proves the deployed shape (broker, worker, result backend) works end to end, which the eager
mode every other test runs in cannot. Skipped when Redis is unreachable, unless the environment
demands services (IAM_REQUIRE_SERVICES=1, as CI does), where a missing Redis is a failure.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from celery import Celery
from django.conf import settings

BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/2"
RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or BROKER_URL
CELERY = Path(sys.executable).parent / "celery"

pytestmark = pytest.mark.redis


def _redis_or_skip(url: str) -> redis.Redis:
    if urlparse(url).scheme not in ("redis", "rediss"):
        pytest.skip(f"the broker {url!r} is not Redis")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis is unreachable at {url} ({exc}); start it or set CELERY_BROKER_URL"
        if os.environ.get("IAM_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (IAM_REQUIRE_SERVICES=1 requires it)")
        pytest.skip(message)
    return client


@pytest.fixture
def queue():
    """A queue no other worker listens on; its broker bookkeeping is removed afterwards."""
    client = _redis_or_skip(BROKER_URL)
    name = f"iam-test-{uuid.uuid4().hex}"
    yield name
    leftovers = [name, *client.scan_iter(match=f"_kombu.binding*.{name}")]
    client.delete(*leftovers)


@pytest.fixture
def worker(queue, tmp_path):
    env = {**os.environ, "CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND": RESULT_BACKEND}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CELERY), "-A", "iam_project", "worker", "--pool=solo", "--concurrency=1",
             "-Q", queue, "-n", f"{queue}@%h", "--without-heartbeat", "--without-gossip",
             "--without-mingle", "-l", "warning"],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    yield process, log
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(result, process, log, timeout=30.0):
    """The task's value, failing at once (with the worker's log) if the worker dies first."""
    deadline = time.monotonic() + timeout
    while not result.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {process.returncode}" if process.poll() is not None else "timed out"
            pytest.fail(f"no answer from the worker ({state}):\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return result.get(timeout=1)


def test_worker_runs_ping_from_the_broker(queue, worker):
    process, log = worker
    app = Celery("iam-test", broker=BROKER_URL, backend=RESULT_BACKEND)
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")

    result = app.send_task("iam.ping", queue=queue)
    try:
        value = _wait_for(result, process, log)
    finally:
        result.forget()
        app.close()

    assert value == "pong"
