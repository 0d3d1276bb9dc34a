"""Real HTTP servers and a real load generator, for benchmarks that measure a whole request.

A server is one gunicorn process (`--workers 1 --threads 1`: the sync worker, one request at a time,
so one worker is one core) pinned to one CPU with `taskset`; the load comes from `wrk` pinned to
another CPU, over loopback. Every run is bounded twice: by wall time (`wrk -d`) and by a request
count (a Lua `response` hook stops the thread), and the wrk process itself by a subprocess timeout.
The server's own CPU time is read from /proc around each run, so a rate can be stated per second
of server CPU as well as per wall second (PostgreSQL and Redis share the machine's cores).
"""

import base64
import http.client
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CPU = "1"
LOADGEN_CPU = "0"
TICKS = os.sysconf("SC_CLK_TCK")

LUA = """\
wrk.method = {method}
wrk.body = {body}
{headers}
local limit, seen = {limit}, 0
function response(status, headers, body)
  seen = seen + 1
  if seen >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""
BODIES_LUA = """\
local bodies, next_body = {{}}, 0
for line in io.lines({path}) do bodies[#bodies + 1] = line end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end"""
RESULT_LINE = re.compile(r"BENCH requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) errors=(\d+)")


def basic_auth(client_id: str, secret: str) -> str:
    # RFC 6749 2.3.1: both halves are form-urlencoded before joining; ours are URL-safe already.
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass(frozen=True)
class Endpoint:
    """One request, repeated: what the load generator sends."""

    path: str
    method: str = "GET"
    body: str = ""
    headers: dict = field(default_factory=dict)
    # A file of bodies, one per line, sent in turn instead of `body` (each at most once if the run's
    # limit is the number of lines).
    bodies_file: str | None = None

    def lua(self, limit: int) -> str:
        lines = [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in self.headers.items()]
        if self.bodies_file:
            lines.append(BODIES_LUA.format(path=_lua_str(self.bodies_file)))
        return LUA.format(method=_lua_str(self.method), body=_lua_str(self.body),
                          headers="\n".join(lines), limit=limit)

    def call(self, port: int) -> tuple[int, dict]:
        """One request with the standard library: status and JSON body, to check before measuring."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            headers = dict(self.headers)
            conn.request(self.method, self.path, body=self.body or None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {"raw": raw[:300].decode(errors="replace")}


def _lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII text


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # seconds of the gunicorn worker's CPU
    # Seconds of CPU of the server's backing processes (its database backend, Redis); None when one of
    # them was replaced mid-run (Django's CONN_MAX_AGE recycles the connection), as its CPU is lost.
    backing_cpu: float | None
    # Busy CPU seconds of everything else on the machine during the run (not the server, its backing
    # processes or wrk): a benchmark running next to a test suite reads low, and this says so.
    other_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def other_load(self) -> float:
        """The rest of the machine's load during the run, in cores."""
        return self.other_cpu / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.server_cpu if self.server_cpu else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int | str) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def _machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _total_cpu_seconds(pids) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


class GunicornServer:
    """`gunicorn --workers 1 --threads 1` pinned to SERVER_CPU; a context manager that always stops it."""

    def __init__(self, *, name: str, gunicorn: Path, app: str, cwd: Path, env: dict, log_dir: Path,
                 backing: Callable[[], list[int]] = list):
        # `backing` lists the pids of the processes serving this one (its PostgreSQL backend, Redis),
        # looked up before each run: their CPU is this server's cost too, spent outside its core.
        self.name, self.port, self.backing = name, free_port(), backing
        self.log_path = log_dir / f"{name}.log"
        self.command = ["taskset", "-c", SERVER_CPU, str(gunicorn), "--workers", "1", "--threads", "1",
                        "--bind", f"127.0.0.1:{self.port}", "--timeout", "60", "--no-control-socket", app]
        self.cwd, self.env = cwd, env
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "GunicornServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.worker_pid():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f}s; see {self.log_path}")

    def worker_pid(self) -> int | None:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        return int(pids[0]) if pids else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # gunicorn's master stops its worker on SIGTERM
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)  # its own session: only this server and its worker
            self.process.wait(timeout=5)


def wait_for_quiet(*, threshold: float = 0.3, patience: float = 10.0) -> float:
    """Wait (at most `patience` seconds) until the machine is nearly idle between runs; the cores
    still busy when it returns. Called while the servers are idle, so all of that load is someone else's."""
    deadline = time.monotonic() + patience
    while True:
        busy, started = _machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        load = (_machine_busy_seconds() - busy) / (time.monotonic() - started)
        if load < threshold or time.monotonic() > deadline:
            return load


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return wrk


def wrk_run(server: GunicornServer, endpoint: Endpoint, *, connections: int, seconds: float,
            limit: int) -> LoadResult:
    """Drive `endpoint` on `server` for at most `seconds` and at most `limit` responses."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(endpoint.lua(limit))
    worker, backing_pids = server.worker_pid(), server.backing()
    command = ["taskset", "-c", LOADGEN_CPU, require_wrk(), "-t1", f"-c{connections}",
               f"-d{seconds:g}s", "--timeout", "10s", "--latency", "-s", script.name,
               f"http://127.0.0.1:{server.port}{endpoint.path}"]
    try:
        cpu, backing = _cpu_seconds(worker), _total_cpu_seconds(backing_pids)
        busy, load_generator = _machine_busy_seconds(), _children_cpu_seconds()
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
        cpu, backing = _cpu_seconds(worker) - cpu, _total_cpu_seconds(backing_pids) - backing
        busy, load_generator = _machine_busy_seconds() - busy, _children_cpu_seconds() - load_generator
        other = max(0.0, busy - cpu - max(backing, 0.0) - load_generator)
        if sorted(server.backing()) != sorted(backing_pids):
            backing = None
    finally:
        os.unlink(script.name)
    match = RESULT_LINE.search(done.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    requests, micros, p50, p99, errors = (int(g) for g in match.groups())
    if worker != server.worker_pid():
        raise RuntimeError(f"{server.name}: the gunicorn worker was replaced mid-run; see {server.log_path}")
    return LoadResult(requests, micros / 1e6, p50 / 1000, p99 / 1000, errors, cpu, backing, other)
