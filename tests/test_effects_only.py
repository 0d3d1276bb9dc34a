"""Adapters (SCIM), the web layer (every app's API views, pages, forms) and the commands reach people,
memberships, roles, teams, agents and credentials only through the apps' effect services: this reads
the source and fails on a direct write to another app's rows.

What it recognises: `Model.objects...create/update/delete/...` and `Model(...)` on the models of an
app the module does not belong to (any model at all, for web-layer modules and commands), and
`.save()`/`.delete()` on a name that reads as one of those objects (`membership.save()`). It reads
names, not types, so it is a backstop for review, as the tenancy lint is.
"""

import ast
import re
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
CORE_APPS = ("core", "audit", "accounts", "rbac", "agents", "trust")
WEB_MODULE = re.compile(r"^(\w+)/(api|views|forms|urls)(\.py|/)|^web/|^iam_project/management/")
WRITES = {"create", "bulk_create", "get_or_create", "update_or_create", "update", "delete", "bulk_update",
          "_raw_delete"}
OBJECT_NAMES = re.compile(r"^(membership|member|user|owner|role|team|standing|assignment|key|api_key|agent|"
                          r"secret|connection|run|policy|signing_key)s?$")
# Third-party models an app owns: accounts keeps people's authenticator apps in django-otp's table.
OWN_TABLES = {"accounts": {"TOTPDevice"}}


def _models_by_app() -> dict:
    by_app: dict = {}
    for model in apps.get_models():
        by_app.setdefault(model._meta.app_label, set()).add(model.__name__)
    return by_app


def _sources():
    for app in (*CORE_APPS, "scim", "sso", "web", "iam_project"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                yield str(path.relative_to(ROOT)), path.read_text()


def _root_name(node):
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _problems(rel: str, text: str, by_app: dict) -> list[str]:
    app = rel.split("/")[0]
    web = bool(WEB_MODULE.match(rel))
    own = set() if web else by_app.get(app, set()) | OWN_TABLES.get(app, set())
    foreign = set().union(*by_app.values()) - own
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITES and _root_name(func) in foreign:
            found.append(f"{rel}:{node.lineno}: {_root_name(func)}...{func.attr}()")
        elif (isinstance(func, ast.Attribute) and func.attr in ("save", "delete")
              and isinstance(func.value, ast.Name) and OBJECT_NAMES.match(func.value.id)
              and (web or app == "scim")):
            found.append(f"{rel}:{node.lineno}: {func.value.id}.{func.attr}()")
    return found


def test_adapters_pages_and_commands_write_only_through_the_effect_services():
    by_app = _models_by_app()
    problems = [p for rel, text in _sources() for p in _problems(rel, text, by_app)]
    assert not problems, "writes outside the effect services:\n" + "\n".join(problems)


def test_the_check_recognises_a_direct_write():
    by_app = _models_by_app()
    sample = "Membership.objects.for_org(org).filter(pk=1).update(role='owner')\nmembership.save()\n"
    assert len(_problems("scim/users.py", sample, by_app)) == 2
    assert len(_problems("accounts/views/members.py", "ApiKey.objects.create(org=org)\n", by_app)) == 1
    assert not _problems("accounts/api_keys.py", "ApiKey.objects.create(org=org)\n", by_app)
