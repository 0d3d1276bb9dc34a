"""Token exchange (RFC 8693) per server core, against the client_credentials grant in the same run.

The same server, path and setup as the oauth benchmark (bench/oauth_compare.py): our project in
production mode under `gunicorn --workers 1 --threads 1` pinned to CPU 1, PostgreSQL and Redis,
`wrk` pinned to CPU 0 over loopback, every case alternated over ROUNDS rounds. The org has four
agents A, B, C and D, each allowed by its owner to hand its tokens to the next (`may_delegate_to`),
so a chain reaches the org's default limit of three hand-offs: A's own token naming B in `may_act`,
exchanged by B for one naming C, exchanged by C for one naming D, exchanged by D.

- `POST /oauth/<org>/token` with client_credentials (A), the peer; and with `may_act=B`, the token
  A hands on (the peer plus the `may_act` lookup);
- the exchange at depth 1 (B exchanges A's token; also naming C in `may_act`, as a chain's middle
  hop does) and at the limit (D exchanges C's depth-2 token), each with a subject token the server
  has never seen on every request (every hand-off is a new token: signature check, revocation read
  of every link) and with the same subject token again and again (the signature check remembered by
  the worker);
- `POST /oauth/<org>/introspect` by the connection of a depth-3 token beside a plain one, the same
  token repeated and a new token on every request.

Subject tokens and tokens to introspect are minted before every run through the project's own
services (`token_grant`, `exchange_grant`) in a `manage.py shell` on the same database and Redis, so
they are exactly what the server itself would issue; the chain's upper links are shared and only
the last hop is new. Tokens live 300 s (the org's default), hence minting per run.
"""

import base64
import json
import os
import sys
import tempfile
from pathlib import Path

import django
import gunicorn
import psycopg
import redis

from agents.chain import depth
from bench.harness import RESULTS_DIR, format_table, report
from bench.http_load import Endpoint, GunicornServer, basic_auth, require_wrk, wait_for_quiet
from bench.oauth_compare import (
    AUDIENCE,
    ORG,
    ROOT,
    SCOPE,
    SECONDS,
    THROUGHPUT_CONNECTIONS,
    WARMUP_SECONDS,
    Case,
    _backends,
    _check,
    _form,
    _manage,
    _our_env,
    _pg_params,
    _run,
    _token_endpoint,
)
from bench.oauth_dot import last_json_line

# Not the oauth benchmark's db 13, which that one flushes. Anyone else emptying this db mid-run
# turns every verification into a read-back from the database; SENTINEL (set before each run,
# looked for after it) says when that happened.
REDIS_URL = "redis://127.0.0.1:6379/14"
SENTINEL = "bench:exchange:sentinel"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
AGENTS = "ABCD"
FRESH_TOKENS = 4000  # per run: more than a run of SECONDS uses at these rates (a run also stops there)
LIMIT = 20_000
# One more than the oauth benchmark: eleven cases on a shared two-core machine need the extra chance
# of a quiet run each.
ROUNDS = 3

# Run by our `manage.py shell`: the org, its connection and four agents, each allowed to hand its
# tokens to the next, through the same policy wrappers the pages call.
SEED = f"""\
import json
from accounts.models import User
from accounts.services import org_create
from agents.policies import agent_create, agent_delegates_set, connection_create
from core.tenancy import org_scope
from rbac.guard import access_for_user
owner = User.objects.create_user("owner@bench.example")
org = org_create(slug={ORG!r}, name="Exchange bench", owner=owner)
access = access_for_user(user=owner, org_slug={ORG!r})
creds = {{}}
with org_scope(org):
    connection, connection_secret = connection_create(access=access, name="bench-api",
                                                      audience={AUDIENCE!r}, scopes=[{SCOPE!r}, "write"])
    agents = []
    for name in {AGENTS!r}:
        agent, secret = agent_create(access=access, name="bench-agent-" + name.lower(), scopes=[{SCOPE!r}],
                                     audiences=[{AUDIENCE!r}])
        agents.append(agent)
        creds[name] = [agent.client_id, secret]
    for agent, successor in zip(agents, agents[1:]):
        agent_delegates_set(access=access, agent=agent, targets=[successor])
creds["connection"] = [connection.client_id, connection_secret]
print(json.dumps(creds))
"""

# Writes `count` tokens of one kind, one a line, issued by the project's services as the server
# would issue them. The kinds: `plain` (A's own), `for_b` (A's, may_act B: a depth-1 exchange's
# subject), `for_d` (C's depth-2 token, may_act D: a depth-3 exchange's subject), `depth3` (D's).
MINT = f"""\
import json, os
from agents.exchange import ACCESS_TOKEN_TYPE, ExchangeRequest, exchange_grant
from agents.issuance import GrantRequest, token_grant
job = json.loads(os.environ["BENCH_MINT"])
creds = job["creds"]
def may_act(name):
    return creds[name][0] if name else None
def own(name, successor=None):
    client_id, secret = creds[name]
    return token_grant(GrantRequest(org_slug={ORG!r}, client_id=client_id, client_secret=secret,
                                    scope={SCOPE!r}, resource={AUDIENCE!r}, run_id=None,
                                    may_act=may_act(successor))).token
def hop(name, subject, successor=None):
    client_id, secret = creds[name]
    return exchange_grant(ExchangeRequest(
        org_slug={ORG!r}, client_id=client_id, client_secret=secret, subject_token=subject,
        subject_token_type=ACCESS_TOKEN_TYPE, resource={AUDIENCE!r}, scope={SCOPE!r},
        may_act=may_act(successor))).token
kind = job["kind"]
if kind == "plain":
    make = lambda: own("A")
elif kind == "for_b":
    make = lambda: own("A", "B")
elif kind == "for_d":
    at_b = hop("B", own("A", "B"), "C")
    make = lambda: hop("C", at_b, "D")
else:
    at_c = hop("C", hop("B", own("A", "B"), "C"), "D")
    make = lambda: hop("D", at_c)
with open(job["path"], "w") as out:
    for _ in range(job["count"]):
        out.write(make() + "\\n")
"""

AUDIT_COUNT = """\
import json
from audit.events import AuditEvent
from audit.models import AuditEntry
entries = AuditEntry.objects.unscoped()
print(json.dumps({e.name: entries.filter(event_code=e.code).count()
                  for e in (AuditEvent.TOKEN_ISSUED, AuditEvent.TOKEN_INTROSPECTED,
                            AuditEvent.TOKEN_EXCHANGE_ERROR, AuditEvent.TOKEN_DENIED)}))
"""

# Each case's peer: the exchange against the grant it replaces, a chain's introspection against a
# plain token's of the same kind (repeated or new).
PEERS = {"cc-may-act": "cc", "x1-new": "cc", "x1-may-act": "cc", "x3-new": "cc", "x1-same": "cc",
         "x3-same": "cc", "i3-same": "i-same", "i3-new": "i-new"}
# The depth each case's token must show, and the agent its `may_act` must name (none where absent):
# checked before measuring, from the answer itself.
DEPTHS = {"cc": 0, "cc-may-act": 0, "x1-new": 1, "x1-may-act": 1, "x1-same": 1, "x3-new": 3, "x3-same": 3,
          "i-same": 0, "i-new": 0, "i3-same": 3, "i3-new": 3}
MAY_ACT = {"cc-may-act": "B", "x1-may-act": "C"}


class Minter:
    """Fresh tokens of one kind before each run, through `manage.py shell` (SEED's credentials)."""

    def __init__(self, env: dict, creds: dict, workdir: Path):
        self.env, self.creds, self.workdir = env, creds, workdir

    def tokens(self, kind: str, count: int) -> list[str]:
        path = self.workdir / f"{kind}.tokens"
        job = {"creds": self.creds, "kind": kind, "count": count, "path": str(path)}
        _manage({**self.env, "BENCH_MINT": json.dumps(job)}, "shell", "-c", MINT)
        return path.read_text().split()

    def refresh(self, kind: str, count: int, endpoint_for):
        """A Case's `refresh`: `count` new tokens, each sent once (or one token, sent LIMIT times)."""
        bodies = self.workdir / f"{kind}-{count}.bodies"

        def refresh() -> tuple[Endpoint, int]:
            tokens = self.tokens(kind, count)
            if count == 1:
                return endpoint_for(tokens[0], None), LIMIT
            lines = [endpoint_for(token, None).body for token in tokens]
            bodies.write_text("\n".join(lines) + "\n")
            return endpoint_for(tokens[0], str(bodies)), len(lines)

        return refresh


def _exchange_endpoint(creds: dict, actor: str, successor: str | None = None):
    auth = basic_auth(*creds[actor])
    handing_on = {"may_act": creds[successor][0]} if successor else {}

    def endpoint(subject_token: str, bodies_file: str | None) -> Endpoint:
        form = _form(grant_type=EXCHANGE, subject_token=subject_token, subject_token_type=ACCESS,
                     resource=AUDIENCE, scope=SCOPE, **handing_on)
        form["headers"]["Authorization"] = auth
        return Endpoint(path=f"/oauth/{ORG}/token", bodies_file=bodies_file, **form)

    return endpoint


def _introspect_endpoint(creds: dict):
    auth = basic_auth(*creds["connection"])

    def endpoint(token: str, bodies_file: str | None) -> Endpoint:
        form = _form(token=token)
        form["headers"]["Authorization"] = auth
        return Endpoint(path=f"/oauth/{ORG}/introspect", bodies_file=bodies_file, **form)

    return endpoint


def _cases(server: GunicornServer, creds: dict, minter: Minter) -> list[Case]:
    token_path, introspect_path = f"/oauth/{ORG}/token", f"/oauth/{ORG}/introspect"
    cc = _token_endpoint(token_path, *creds["A"], resource=AUDIENCE)
    cc_may_act = _token_endpoint(token_path, *creds["A"], resource=AUDIENCE, may_act=creds["B"][0])
    cases = [Case("cc", f"client_credentials (A): POST {token_path}", server, cc, "access_token"),
             Case("cc-may-act", "client_credentials, may_act=B (A)", server, cc_may_act, "access_token")]
    for key, label, kind, count, endpoint_for, expect in (
        ("x1-new", "exchange depth 1 (B), new subject token", "for_b", FRESH_TOKENS,
         _exchange_endpoint(creds, "B"), "access_token"),
        ("x1-may-act", "exchange depth 1 (B), may_act=C, new subject token", "for_b", FRESH_TOKENS,
         _exchange_endpoint(creds, "B", "C"), "access_token"),
        ("x3-new", "exchange depth 3 (D), new subject token", "for_d", FRESH_TOKENS,
         _exchange_endpoint(creds, "D"), "access_token"),
        ("x1-same", "exchange depth 1 (B), same subject token", "for_b", 1,
         _exchange_endpoint(creds, "B"), "access_token"),
        ("x3-same", "exchange depth 3 (D), same subject token", "for_d", 1,
         _exchange_endpoint(creds, "D"), "access_token"),
        ("i-same", f"introspect plain token (same): POST {introspect_path}", "plain", 1,
         _introspect_endpoint(creds), "active"),
        ("i3-same", "introspect depth-3 token (same)", "depth3", 1, _introspect_endpoint(creds), "active"),
        ("i-new", "introspect plain token (new)", "plain", FRESH_TOKENS, _introspect_endpoint(creds),
         "active"),
        ("i3-new", "introspect depth-3 token (new)", "depth3", FRESH_TOKENS, _introspect_endpoint(creds),
         "active"),
    ):
        refresh = minter.refresh(kind, count, endpoint_for)
        endpoint, _ = refresh()
        cases.append(Case(key, label, server, endpoint, expect, refresh=refresh))
    return cases


def _measure(cases: list[Case], store: redis.Redis) -> tuple[set[str], dict[str, list[float]]]:
    """As the oauth benchmark's, over ROUNDS rounds: each case's best latency and best throughput.
    Returns the cases during which someone else emptied the store, and each case's worker CPU ms per
    request in every throughput run (the spread the best run hides)."""
    emptied, spread = set(), {case.key: [] for case in cases}

    def run(case: Case, **kwargs):
        store.set(SENTINEL, 1)
        result = _run(case, **kwargs)
        if not store.exists(SENTINEL):
            emptied.add(case.key)
        return result

    for case in cases:
        run(case, connections=1, seconds=WARMUP_SECONDS)
    for round_ in range(ROUNDS):  # alternate the order so a burst of outside load hits every case
        for case in cases if round_ % 2 == 0 else cases[::-1]:
            print(f"  round {round_ + 1}: {case.label}", end="", flush=True)
            wait_for_quiet()
            latency = run(case, connections=1, seconds=SECONDS)
            if case.latency is None or latency.p50_ms < case.latency.p50_ms:
                case.latency = latency
            wait_for_quiet()
            throughput = run(case, connections=THROUGHPUT_CONNECTIONS, seconds=SECONDS)
            if case.throughput is None or throughput.rate > case.throughput.rate:
                case.throughput = throughput
            spread[case.key].append(1000 / throughput.per_cpu_second)
            print(f": {throughput.rate:,.0f}/s, {spread[case.key][-1]:.2f} worker CPU ms, other load "
                  f"{throughput.other_load:.2f}", flush=True)
    return emptied, spread


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _check_shape(case: Case, creds: dict) -> None:
    """The answer is a success and its token is what the case claims to measure: its depth, and
    whom it lets act next."""
    body = _check(case)
    claims = body if case.expect == "active" else _claims(body["access_token"])
    if depth(claims) != DEPTHS[case.key]:
        raise RuntimeError(f"{case.label}: expected depth {DEPTHS[case.key]}, got {claims.get('act')}")
    named = (claims.get("may_act") or {}).get("client_id")
    wanted = creds[MAY_ACT[case.key]][0] if case.key in MAY_ACT else None
    if case.expect == "access_token" and named != wanted:
        raise RuntimeError(f"{case.label}: expected may_act {wanted}, got {named}")


def _ratio(case: Case, peer: Case | None) -> list[str]:
    if peer is None:
        return ["1 (peer)", "1 (peer)"]
    return [f"{case.throughput.rate / peer.throughput.rate:.2f}",
            f"{case.throughput.per_cpu_second / peer.throughput.per_cpu_second:.2f}"]


def _row(case: Case, cases: dict[str, Case], spread: list[float]) -> list[str]:
    lat, thr = case.latency, case.throughput
    backing = "n/a" if thr.backing_cpu is None else f"{thr.backing_cpu * 1000 / thr.requests:.2f}"
    peer = cases.get(PEERS.get(case.key, ""))
    return [case.label, f"{thr.rate:,.0f}", f"{thr.per_cpu_second:,.0f}", f"{1000 / thr.per_cpu_second:.2f}",
            f"{min(spread):.2f}-{max(spread):.2f}", backing, f"{lat.p50_ms:.2f}", f"{lat.p99_ms:.2f}",
            f"{thr.p50_ms:.2f}", f"{thr.p99_ms:.2f}",
            f"{lat.errors + thr.errors}", f"{max(lat.other_load, thr.other_load):.2f}", *_ratio(case, peer)]


def _report(cases: dict[str, Case], audit: dict, pg_version: str, versions: str, emptied: set,
            spread: dict[str, list[float]]) -> str:
    table = format_table(
        ["case (1 gunicorn sync worker on CPU 1)", "req/s", "req/CPU-s", "worker CPU ms", "all rounds",
         "PG+Redis CPU ms",
         "p50 ms c1", "p99 ms c1", f"p50 ms c{THROUGHPUT_CONNECTIONS}", f"p99 ms c{THROUGHPUT_CONNECTIONS}",
         "errors", "other load", "req/s vs peer", "req/CPU-s vs peer"],
        [_row(c, cases, spread[k]) for k, c in cases.items()],
    )
    rate = {k: c.throughput.rate for k, c in cases.items()}
    cpu = {k: c.throughput.per_cpu_second for k, c in cases.items()}
    cost = ", ".join(f"{k} {cpu['cc'] / cpu[k]:.2f}x" for k in PEERS if PEERS[k] == "cc")
    notes = [
        f"req/s: wrk at {THROUGHPUT_CONNECTIONS} connections (saturated worker), best of {ROUNDS} rounds of "
        f"{SECONDS:g}s; req/CPU-s: the same requests per second of the worker's own CPU (/proc); "
        "worker CPU ms: its inverse, the worker's CPU per request; all rounds: its lowest and highest over "
        "every round's throughput run.",
        "peer: client_credentials (A) for every grant; the plain token's introspection of the same kind "
        "(same or new) for a depth-3 token's. 'vs peer' is this case's rate over the peer's.",
        f"exchange / client_credentials, grants/s: depth 1 {rate['x1-new'] / rate['cc']:.2f}, depth 3 "
        f"{rate['x3-new'] / rate['cc']:.2f} (new subject token each request); depth 1 "
        f"{rate['x1-same'] / rate['cc']:.2f}, depth 3 {rate['x3-same'] / rate['cc']:.2f} "
        "(same subject token)",
        f"worker CPU per grant against client_credentials: {cost}",
        "handing on (may_act), exchange / client_credentials: "
        f"{rate['x1-may-act'] / rate['cc-may-act']:.2f} grants/s, worker CPU per grant "
        f"{cpu['cc-may-act'] / cpu['x1-may-act']:.2f}x",
        f"introspection, depth 3 / plain: {rate['i3-same'] / rate['i-same']:.2f} (same token), "
        f"{rate['i3-new'] / rate['i-new']:.2f} (new token each request)",
        "new subject token: every request a token the worker has never seen (signature check, every "
        "link's revocation keys read in one round trip); same: one token again and again, its signature "
        "check remembered by the worker.",
        "other load: cores busy with anything but this server, its backing processes and wrk during the "
        "case's two kept runs; above ~0.3 the figures read low.",
        f"audit entries written: {audit}",
        f"store emptied by another process during: {', '.join(sorted(emptied))} (those figures include "
        "read-backs from the database; run again)" if emptied else "store: kept throughout every run",
        versions,
    ]
    return report("exchange", "Token exchange beside client_credentials, and a chain's introspection, "
                  "per server core", table, notes, label=pg_version)


def main() -> str:
    require_wrk()
    pg, pid = _pg_params(), os.getpid()
    database = f"iam_bench_exchange_{pid}"
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    admin = psycopg.connect(**{k: v for k, v in pg.items() if v}, dbname="postgres", autocommit=True)
    log_dir = RESULTS_DIR / "exchange-logs"
    try:
        pg_version = "PostgreSQL " + admin.execute("SHOW server_version").fetchone()[0].split()[0]
        admin.execute(f'CREATE DATABASE "{database}"')
        env = {**_our_env(pg, database), "REDIS_URL": REDIS_URL}
        print("migrating and seeding ...", flush=True)
        _manage(env, "migrate", "--noinput", "-v0")
        creds = last_json_line(_manage(env, "shell", "-c", SEED))
        with tempfile.TemporaryDirectory(prefix="bench-exchange-") as tmp, GunicornServer(
            name="ours", gunicorn=Path(sys.executable).parent / "gunicorn",
            app="iam_project.wsgi:application", cwd=ROOT, env=env, log_dir=log_dir,
            backing=_backends(admin, database, cache.info("server")["process_id"]),
        ) as server:
            print("minting the first tokens ...", flush=True)
            cases = _cases(server, creds, Minter(env, creds, Path(tmp)))
            for case in cases:
                _check_shape(case, creds)
            emptied, spread = _measure(cases, cache)
            audit = last_json_line(_manage(env, "shell", "-c", AUDIT_COUNT))
        versions = (f"Django {django.__version__}, gunicorn {gunicorn.__version__}; Redis db "
                    f"{REDIS_URL.rsplit('/', 1)[1]}; server log in {log_dir}")
        return _report({c.key: c for c in cases}, audit, pg_version, versions, emptied, spread)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
        cache.flushdb()
