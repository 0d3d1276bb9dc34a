"""The trust gates per core: dispatch decisions in-process and over HTTP, and the token grant with
the issuance gates on beside the same grant with them off, in one run.

One database (`iam_h_bench` on the PostgreSQL of `DATABASE_URL`, dropped at the end) and Redis db 3
(cache; db 4 the broker), flushed before and after. The org, its connection, the agent and its
history are made through the project's own services in a `manage.py shell`: 200 signals spread over
the ten half-lives a score reads (a mix of positive reviews and violations, so the score stays
"trusted" and the agent is never contained), 5 attestations signed by a registered root and
verified on submission, 10 policy gates (5 for the operation measured), the connection's minimum
and an API key holding run:write and agent:read.

1. In-process, in a `manage.py shell` pinned to CPU 1: `trust.dispatch.dispatch_evaluate` for the
   agent, operation `deploy`, the connection's audience, (a) warm: the steady state, one cache round
   trip; (b) score expired: the score entry and its sample marker deleted before each decision (what
   happens once per agent every RECHECK_SECONDS: the score is computed, sampled, stored; the org's
   entry still holds); (c) cold: the cache emptied before each decision (also the org's entry and
   both versions). Decisions/s of wall time and of the process's own CPU, alternating rounds.
2. Over HTTP, the oauth benchmark's server and load (bench/http_load.py: one gunicorn sync worker
   on CPU 1, wrk on CPU 0): `POST /api/v1/orgs/<org>/runs` (dispatch through the gates, the run and
   its audit entry written) beside `GET /api/v1/orgs/<org>/agents/<id>` with the same API key.
3. The oauth benchmark's client_credentials grant on that server (gates on: trust.issuance reads the
   score from the cache) beside the same grant on a second server on the same CPU, database and
   Redis whose process emptied `agents.issuance.ISSUANCE_GATES` at start (bench/wsgi_without_gates.py;
   nothing in production reads it). Alternating rounds; the ratio of the two.
"""

import json
import subprocess
import sys
from pathlib import Path

import django
import gunicorn
import psycopg
import redis

from bench.harness import RESULTS_DIR, format_table, report
from bench.http_load import SERVER_CPU, Endpoint, GunicornServer, require_wrk, wait_for_quiet
from bench.oauth_compare import (
    AUDIENCE,
    ORG,
    ROOT,
    SECONDS,
    THROUGHPUT_CONNECTIONS,
    WARMUP_SECONDS,
    Case,
    _backends,
    _manage,
    _our_env,
    _pg_params,
    _run,
    _token_endpoint,
)
from bench.oauth_dot import last_json_line

DATABASE = "iam_h_bench"
REDIS_URL = "redis://127.0.0.1:6379/3"
BROKER_URL = "redis://127.0.0.1:6379/4"
ROUNDS = 3
OPERATION = "deploy"
SIGNALS, ATTESTATIONS, GATES, MIN_TRUST = 200, 5, 10, 40
# In-process decisions per round: warm, score expired, cold.
COUNTS = {"warm": 20_000, "expired": 1_000, "cold": 1_000}

SEED = f"""\
import json, time
from datetime import timedelta
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone
from accounts.api_keys import api_key_mint
from accounts.models import User
from accounts.services import org_create
from agents.models import Connection
from agents.policies import agent_create, connection_create
from audit.actors import Actor
from core.permissions import Perm
from core.tenancy import org_scope
from rbac.guard import access_for_user
from trust.gates import trust_gate_create
from trust.models import TrustSignal
from trust.services import attestation_add, trust_policy_for_org, trust_root_create
from trust.scoring import SIGNAL_HORIZON_HALF_LIVES

owner = User.objects.create_user("owner@bench.example")
org = org_create(slug={ORG!r}, name="Dispatch bench", owner=owner)
access = access_for_user(user=owner, org_slug={ORG!r})
actor = Actor.for_user(owner)
with org_scope(org):
    connection, connection_secret = connection_create(access=access, name="bench-api",
                                                      audience={AUDIENCE!r}, scopes=["read", "write"])
    agent, secret = agent_create(access=access, name="bench-agent", scopes=["read"],
                                 audiences=[{AUDIENCE!r}])
    connection = Connection.objects.for_org(org).get(pk=connection.pk)
    connection.min_trust = {MIN_TRUST}
    connection.save(update_fields=["min_trust"])
    for i in range({GATES}):  # half for the measured operation, some escalating; all pass
        trust_gate_create(org=org, actor=actor, name=f"gate-{{i}}",
                          operation={OPERATION!r} if i % 2 == 0 else f"op-{{i}}",
                          min_score=10 + 5 * i, below="escalate" if i % 4 == 0 else "block")
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public.update(kid="bench-root-1", use="sig", alg="ES256")
    trust_root_create(org=org, name="review board", jwks={{"keys": [public]}}, actor=actor,
                      created_by=owner)
    now = int(time.time())
    for i in range({ATTESTATIONS}):
        claims = {{"sub": agent.subject, "type": f"review-{{i}}", "weight": 8, "iat": now,
                   "exp": now + 30 * 86400 + i * 3600, "jti": f"bench-{{i}}"}}
        compact = jwt.encode(claims, private, algorithm="ES256", headers={{"kid": "bench-root-1"}})
        attestation_add(agent=agent, compact=compact, actor=actor)
    # Recorded history: the rows signal_record writes, spread over what the score reads.
    span = trust_policy_for_org(org).signal_half_life_seconds * SIGNAL_HORIZON_HALF_LIVES
    at = timezone.now()
    kinds = [("positive_review", "low")] * 3 + [("output_flagged", "low"), ("policy_violation", "medium")]
    TrustSignal.objects.bulk_create([
        TrustSignal(org=org, agent=agent, connection=connection, type=kinds[i % 5][0],
                    severity=kinds[i % 5][1], at=at - timedelta(seconds=span * (i + 0.5) / {SIGNALS}))
        for i in range({SIGNALS})])
    key, key_secret = api_key_mint(org=org, name="bench", perms={{Perm.RUN_WRITE, Perm.RUN_READ,
                                   Perm.AGENT_READ}}, actor=actor, created_by=owner)
print(json.dumps({{"agent": [agent.client_id, secret], "agent_id": str(agent.pk), "api_key": key_secret}}))
"""

# Run by `manage.py shell` pinned to the server's CPU: the decisions, alternating kinds over rounds.
INPROC = f"""\
import json, os, time
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from agents.models import Agent
from trust.dispatch import _score_key, dispatch_evaluate
job = json.loads(os.environ["BENCH_JOB"])
agent = Agent.objects.unscoped().select_related("org").get(pk=job["agent_id"])
def decide():
    return dispatch_evaluate(agent, operation={OPERATION!r}, audiences=[{AUDIENCE!r}])
def forget_score():
    cache.delete_many([_score_key(agent.pk), f"trust:sampled:{{agent.pk}}"])
prepare = {{"warm": lambda: None, "expired": forget_score, "cold": cache.clear}}
decision = decide()
shape = {{"decision": decision.decision, "score": decision.score, "level": decision.level,
          "gates": [g.as_dict() for g in decision.gates], "reasons": len(decision.reasons)}}
queries = {{}}
for kind in ("warm", "expired", "cold"):
    decide()
    prepare[kind]()
    with CaptureQueriesContext(connection) as captured:
        decide()
    queries[kind] = len(captured)
results = {{kind: [] for kind in prepare}}
for round_ in range(job["rounds"]):
    order = list(prepare) if round_ % 2 == 0 else list(prepare)[::-1]
    for kind in order:
        decide()
        wall = cpu = 0.0
        for _ in range(job["counts"][kind]):
            prepare[kind]()
            w, c = time.perf_counter(), time.process_time()
            answer = decide()
            wall += time.perf_counter() - w
            cpu += time.process_time() - c
            assert answer.decision == "allow", answer
        results[kind].append([job["counts"][kind], wall, cpu])
print(json.dumps({{"shape": shape, "queries": queries, "results": results}}))
"""

AUDIT_COUNT = """\
import json
from audit.events import AuditEvent
from audit.models import AuditEntry
issued = AuditEntry.objects.unscoped().filter(event_code=AuditEvent.TOKEN_ISSUED.code)
print(json.dumps({"token.issued with the gate's trust": issued.filter(data__has_key="trust").count(),
                  "token.issued without": issued.exclude(data__has_key="trust").count(),
                  "trust.allow": AuditEntry.objects.unscoped().filter(
                      event_code=AuditEvent.TRUST_ALLOWED.code).count()}))
"""

LABELS = {
    "agent-get": "GET /api/v1/orgs/bench/agents/<id> (API key)",
    "runs-post": "POST /api/v1/orgs/bench/runs (dispatch, gates)",
    "cc-gates": "client_credentials, issuance gates on",
    "cc-none": "client_credentials, ISSUANCE_GATES emptied",
}
PEERS = {"runs-post": "agent-get", "cc-gates": "cc-none"}


def _pinned_shell(env: dict, script: str) -> str:
    done = subprocess.run(
        ["taskset", "-c", SERVER_CPU, sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode:
        raise RuntimeError(f"manage.py shell failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _inprocess(env: dict, agent_id: str) -> dict:
    wait_for_quiet()
    job = {"agent_id": agent_id, "rounds": ROUNDS, "counts": COUNTS}
    return last_json_line(_pinned_shell({**env, "BENCH_JOB": json.dumps(job)}, INPROC))


def _json_endpoint(path: str, api_key: str, body: dict | None = None) -> Endpoint:
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    if body is None:
        return Endpoint(path=path, headers=headers)
    return Endpoint(
        path=path,
        method="POST",
        body=json.dumps(body),
        headers={**headers, "Content-Type": "application/json"},
    )


def _check(case: Case, status_wanted: int) -> dict:
    status, body = case.endpoint.call(case.server.port)
    if status != status_wanted or not body.get(case.expect):
        raise RuntimeError(
            f"{case.label}: expected HTTP {status_wanted} with {case.expect!r}, got {status} "
            f"{body}; see {case.server.log_path}"
        )
    return body


def _measure(cases: list[Case]) -> dict[str, list[float]]:
    """Each case's best latency and best throughput over ROUNDS alternating rounds; returns every
    round's worker CPU ms per request and rate (the spread the best run hides)."""
    spread = {case.key: [] for case in cases}
    for case in cases:
        _run(case, connections=1, seconds=WARMUP_SECONDS)
    for round_ in range(ROUNDS):
        for case in cases if round_ % 2 == 0 else cases[::-1]:
            print(f"  round {round_ + 1}: {case.label}", end="", flush=True)
            wait_for_quiet()
            latency = _run(case, connections=1, seconds=SECONDS)
            if case.latency is None or latency.p50_ms < case.latency.p50_ms:
                case.latency = latency
            wait_for_quiet()
            throughput = _run(case, connections=THROUGHPUT_CONNECTIONS, seconds=SECONDS)
            if case.throughput is None or throughput.rate > case.throughput.rate:
                case.throughput = throughput
            spread[case.key].append(
                (throughput.rate, 1000 / throughput.per_cpu_second, throughput.other_load)
            )
            print(
                f": {throughput.rate:,.0f}/s, {spread[case.key][-1][1]:.2f} worker CPU ms, other load "
                f"{throughput.other_load:.2f}",
                flush=True,
            )
    return spread


def _inprocess_table(measured: dict) -> str:
    rows = []
    for kind, label in (
        ("warm", "warm cache (steady state)"),
        ("expired", "score entry expired (org entry warm)"),
        ("cold", "cold: cache emptied before each"),
    ):
        runs = measured["results"][kind]
        wall = [n / w for n, w, _ in runs]
        cpu = [n / c for n, _, c in runs if c]
        n, w, c = (sum(col) for col in zip(*runs, strict=True))
        rows.append(
            [
                label,
                f"{n / w:,.0f}",
                f"{min(wall):,.0f}-{max(wall):,.0f}",
                f"{n / c:,.0f}",
                f"{min(cpu):,.0f}-{max(cpu):,.0f}",
                f"{1000 * w / n:.3f}",
                f"{1000 * c / n:.3f}",
                measured["queries"][kind],
            ]
        )
    return format_table(
        [
            "dispatch_evaluate, in-process on CPU 1",
            "decisions/s",
            "rounds",
            "per CPU-s",
            "rounds",
            "wall ms",
            "CPU ms",
            "queries",
        ],
        rows,
    )


def _http_row(case: Case, cases: dict, spread: list) -> list[str]:
    lat, thr = case.latency, case.throughput
    backing = "n/a" if thr.backing_cpu is None else f"{thr.backing_cpu * 1000 / thr.requests:.2f}"
    rates, cpus = [s[0] for s in spread], [s[1] for s in spread]
    peer = cases.get(PEERS.get(case.key, ""))
    ratio = [
        "1 (peer)" if peer is None else f"{thr.rate / peer.throughput.rate:.2f}",
        "1 (peer)" if peer is None else f"{peer.throughput.per_cpu_second / thr.per_cpu_second:.2f}x",
    ]
    return [
        case.label,
        f"{thr.rate:,.0f}",
        f"{min(rates):,.0f}-{max(rates):,.0f}",
        f"{thr.per_cpu_second:,.0f}",
        f"{1000 / thr.per_cpu_second:.2f}",
        f"{min(cpus):.2f}-{max(cpus):.2f}",
        backing,
        f"{lat.p50_ms:.2f}",
        f"{lat.p99_ms:.2f}",
        f"{lat.errors + thr.errors}",
        f"{max(s[2] for s in spread):.2f}",
        *ratio,
    ]


def _report(measured: dict, cases: dict, spread: dict, audit: dict, pg_version: str, versions: str) -> str:
    http = format_table(
        [
            "case (1 gunicorn sync worker on CPU 1)",
            "req/s",
            "all rounds",
            "req/CPU-s",
            "worker CPU ms",
            "all rounds",
            "PG+Redis CPU ms",
            "p50 ms c1",
            "p99 ms c1",
            "errors",
            "other load",
            "req/s vs peer",
            "CPU vs peer",
        ],
        [_http_row(c, cases, spread[k]) for k, c in cases.items()],
    )
    shape = measured["shape"]
    gates, without = cases["cc-gates"].throughput, cases["cc-none"].throughput
    pairs = [(g[1], n[1]) for g, n in zip(spread["cc-gates"], spread["cc-none"], strict=True)]
    notes = [
        f"fixture: {SIGNALS} signals over ten half-lives, {ATTESTATIONS} attestations, {GATES} gates "
        f"({sum(1 for g in shape['gates'] if g['gate'] == 'gate')} for {OPERATION!r}), the connection's "
        f"minimum {MIN_TRUST}; decision {shape['decision']}, score {shape['score']} ({shape['level']}), "
        f"{len(shape['gates'])} gate outcomes, {shape['reasons']} reasons",
        f"in-process: {ROUNDS} alternating rounds of {COUNTS['warm']:,} warm, {COUNTS['expired']:,} expired "
        f"and {COUNTS['cold']:,} cold decisions; decisions/s is of the time inside dispatch_evaluate only "
        "(waiting on PostgreSQL and Redis included), per CPU-s of this process's own CPU (not theirs); "
        "the cache's emptying is not timed. queries: SQL statements in one decision.",
        f"HTTP: wrk at {THROUGHPUT_CONNECTIONS} connections, best of {ROUNDS} rounds of {SECONDS:g}s; all "
        "rounds: the lowest and highest of every round's throughput run; CPU vs peer: this case's worker "
        "CPU per request over its peer's.",
        f"issuance gates, with / without: {gates.rate / without.rate:.2f} grants/s (best runs), worker "
        f"CPU per grant {without.per_cpu_second / gates.per_cpu_second:.2f}x; per round (CPU ms with, "
        "without): " + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs),
        "other load: cores busy with anything else during the runs (the highest); above ~0.3 the figures "
        "read low.",
        f"audit entries: {audit}",
        versions,
    ]
    return report(
        "dispatch",
        "Trust gates: dispatch decisions and the token grant with and without the issuance gates, per core",
        _inprocess_table(measured) + "\n\n" + http,
        notes,
        label=pg_version,
    )


def main() -> str:
    require_wrk()
    pg = _pg_params()
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    admin = psycopg.connect(**{k: v for k, v in pg.items() if v}, dbname="postgres", autocommit=True)
    log_dir = RESULTS_DIR / "dispatch-logs"
    try:
        pg_version = "PostgreSQL " + admin.execute("SHOW server_version").fetchone()[0].split()[0]
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
        env = {**_our_env(pg, DATABASE), "REDIS_URL": REDIS_URL, "CELERY_BROKER_URL": BROKER_URL}
        print("migrating and seeding ...", flush=True)
        _manage(env, "migrate", "--noinput", "-v0")
        seeded = last_json_line(_manage(env, "shell", "-c", SEED))
        print("in-process decisions ...", flush=True)
        measured = _inprocess(env, seeded["agent_id"])
        cache.flushdb()  # the servers start from an empty cache, as after a deploy
        backing = _backends(admin, DATABASE, cache.info("server")["process_id"])
        gunicorn_bin = Path(sys.executable).parent / "gunicorn"
        common = {"gunicorn": gunicorn_bin, "cwd": ROOT, "env": env, "log_dir": log_dir, "backing": backing}
        with (
            GunicornServer(name="gates", app="iam_project.wsgi:application", **common) as on,
            GunicornServer(name="no-gates", app="bench.wsgi_without_gates:application", **common) as off,
        ):
            token_path, api = f"/oauth/{ORG}/token", f"/api/v1/orgs/{ORG}"
            key, agent_id = seeded["api_key"], seeded["agent_id"]
            cases = [
                Case(
                    "agent-get",
                    LABELS["agent-get"],
                    on,
                    _json_endpoint(f"{api}/agents/{agent_id}", key),
                    "id",
                ),
                Case(
                    "runs-post",
                    LABELS["runs-post"],
                    on,
                    _json_endpoint(
                        f"{api}/runs",
                        key,
                        {"agent": agent_id, "operation": OPERATION, "audiences": [AUDIENCE]},
                    ),
                    "id",
                ),
                Case(
                    "cc-gates",
                    LABELS["cc-gates"],
                    on,
                    _token_endpoint(token_path, *seeded["agent"], resource=AUDIENCE),
                    "access_token",
                ),
                Case(
                    "cc-none",
                    LABELS["cc-none"],
                    off,
                    _token_endpoint(token_path, *seeded["agent"], resource=AUDIENCE),
                    "access_token",
                ),
            ]
            for case in cases:
                body = _check(case, 201 if case.key == "runs-post" else 200)
                if case.key == "runs-post" and body.get("decision") != "allow":
                    raise RuntimeError(f"{case.label}: expected an allowed run, got {body}")
            spread = _measure(cases)
            audit = last_json_line(_manage(env, "shell", "-c", AUDIT_COUNT))
        versions = (
            f"Django {django.__version__}, gunicorn {gunicorn.__version__}; database {DATABASE}, "
            f"Redis db {REDIS_URL.rsplit('/', 1)[1]}; server logs in {log_dir}"
        )
        return _report(measured, {c.key: c for c in cases}, spread, audit, pg_version, versions)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.close()
        cache.flushdb()
