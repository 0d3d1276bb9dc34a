"""`python -m bench` runs every benchmark; `python -m bench
audit|guard|export|login|oauth|exchange|dispatch|jwt|scim|overview` runs one."""

import argparse
import os

import django
from django_scopes import scopes_disabled

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iam_project.settings")
django.setup()

from bench import (  # noqa: E402 (needs Django set up)
    access_export,
    audit_append,
    console_overview,
    dispatch,
    guard_access,
    jwt_algorithms,
    oauth_compare,
    oauth_exchange,
    password_login,
    scim_provision,
)

BENCHMARKS = {"audit": audit_append.main, "guard": guard_access.main, "export": access_export.main,
              "login": password_login.main, "oauth": oauth_compare.main,
              "exchange": oauth_exchange.main, "dispatch": dispatch.main, "jwt": jwt_algorithms.main,
              "scim": scim_provision.main, "overview": console_overview.main}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*",
                        metavar="audit|guard|export|login|oauth|exchange|dispatch|jwt|scim|overview")
    parser.add_argument("--rows", type=int, default=access_export.DEFAULT_ROWS,
                        help="memberships in the export benchmark (default %(default)s)")
    parser.add_argument("--users", type=int, default=scim_provision.USERS,
                        help="users provisioned in the scim benchmark (default %(default)s, at least 100)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    # A benchmark's own setup and its ORM peers read and write rows directly, as test code does;
    # the requests it sends through a client still start with no org scope (as in production).
    with scopes_disabled():
        for name in args.names or list(BENCHMARKS):
            if name == "export":
                access_export.main(rows=args.rows)
            elif name == "scim":
                scim_provision.main(users=args.users)
            else:
                BENCHMARKS[name]()


if __name__ == "__main__":
    main()
