"""What every benchmark shares: a throwaway database, a barrier-started thread pool, a results table.

Figures are reported as ratios against a peer measured in the same process and run, so they say
something on any machine; the absolute rates are printed alongside for context only.
"""

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

from django.db import connection
from django.test.utils import setup_test_environment, teardown_test_environment

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def throwaway_database(name: str):
    """A freshly migrated database of the configured vendor, destroyed on the way out.

    The test database gets a name of its own so a benchmark never collides with a concurrent
    pytest run (which uses test_<NAME>); SQLite gets a file, not memory, so threads share it
    through separate connections the way processes would.
    """
    test_settings = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test_settings["NAME"] = str(Path(tempfile.gettempdir()) / f"iam-bench-{name}-{os.getpid()}.sqlite3")
    else:
        test_settings["NAME"] = f"iam_bench_{name}_{os.getpid()}"
    setup_test_environment(debug=False)  # no query log growing in memory
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=False)
    try:
        yield
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
        teardown_test_environment()


def vendor_label() -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    return f"SQLite {connection.Database.sqlite_version}"


def run_threads(threads: int, work) -> float:
    """Run `work(i)` in `threads` threads, each on its own connection, released together.

    Returns the wall-clock seconds from the release to the last thread's finish.
    """
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def run(i):
        try:
            connection.ensure_connection()
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def format_table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(name: str, title: str, table: str, notes: list[str], label: str | None = None) -> str:
    """Print the report and keep a copy in bench/results/<name>.txt.

    `label` names the database when it is not this process's own (servers in other processes).
    """
    text = "\n".join([f"{title} ({label or vendor_label()})", "", table, "", *notes]).rstrip() + "\n"
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.txt").write_text(text)
    return text
