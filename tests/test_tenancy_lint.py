"""Org-scoped models are reached through `.for_org(org)`; `.unscoped()` is allowed only where a
credential or a system job legitimately crosses orgs. This test reads the source and fails on any
other use of an org-scoped model's manager, so a forgotten scope cannot be merged."""

import re
from pathlib import Path

from django.apps import apps

from core.tenancy import OrgScopedManager, OrgScopedModel

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", "tests", "migrations", "bench", "node_modules"}
# file -> why it may call .unscoped()
UNSCOPED_ALLOWED = {
    "rbac/guard.py": "finds the caller's membership by the URL's org slug in the same query",
    "rbac/authentication.py": "an API key names its own org; the guard then checks the URL's",
    "rbac/selectors.py": "a credential's creator, in the credential's own org matched in the same query",
    "audit/verification.py": "the verifier walks whole chains, platform chain included",
    "audit/services.py": "appends go through the chain head, not a scoped read",
    "agents/issuance.py": "a client id names its agent; the URL's org is matched in the same query",
    "agents/oauth.py": "a connection's client id names it; the URL's org is matched in the same query",
    "agents/keys.py": "a token's kid names its signing key and so its org",
    "agents/tasks.py": "a system job that rotates every org's signing keys",
    "agents/revocation.py": "rebuilding the revocation store covers every org",
    "scim/tokens.py": "a SCIM token names its own org",
    "accounts/services.py": "a person's memberships in every org (acting elsewhere)",
    "accounts/person_audit.py": "a person's own account events go to every org they act in",
    "accounts/invitations.py": "a link names its own org; a person's own invitations in every org",
    "accounts/selectors.py": "a person's memberships in every org (their org switcher, shared accounts)",
    "accounts/policy.py": "the strictest policy of every org a person is in",
    "scim/users.py": "to notice another org's ids (audited, answered 404)",
    "scim/groups.py": "to notice another org's member ids (audited, answered 404)",
    "agents/delegation.py": "a refresh token names its row (org and agent checked after); a person's "
                            "delegations in every org whose policy ends them with the last session",
    "agents/device.py": "a device code or a user code names its row; the org is checked after",
    "agents/views/device_pages.py": "the request this session entered the code of (any org; the guard "
                                    "then checks the person acts in it)",
    "agents/views/delegation_pages.py": "a person's own delegations, in every org",
    "sso/domains.py": "a domain is verified by one org at most: the check (and home-realm discovery) "
                      "looks at every org",
    "sso/connections.py": "system jobs over every org's connections and expired sign-ins",
    "sso/realm.py": "a person's own identities, in every org (where they re-authenticate)",
    "sso/views/reauth.py": "the person's own identity, found before the org's scope is entered",
    "sso/signin.py": "the session a login created is recorded before it acts in any org's scope",
    "trust/runs.py": "a system job that records the expiry of every org's undecided approvals",
    "trust/containment.py": "a system sweep that contains every org's agents fallen below their floor",
}


def _scoped_model_names() -> list[str]:
    """Models with an `org` column of their own and the scoped manager (child tables, reached
    through their parent, are scoped at run time: tests/test_tenancy_scope.py)."""
    return [m.__name__ for m in apps.get_models()
            if isinstance(m._default_manager, OrgScopedManager) and m._default_manager.org_path == "org"]


def _sources():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if not SKIP_DIRS.intersection(rel.parts):
            yield str(rel), path.read_text()


def test_org_scoped_models_are_only_reached_through_the_scoped_manager():
    assert {"Membership", "ApiKey", "Role", "Team", "AuditEntry", "AgentPolicy"} <= set(_scoped_model_names())
    assert issubclass(apps.get_model("accounts", "Membership"), OrgScopedModel)
    names = "|".join(_scoped_model_names())
    call = re.compile(rf"\b({names})\.objects\.(\w+)")
    problems = []
    for rel, text in _sources():
        for match in call.finditer(text):
            model, method = match.groups()
            if method == "for_org" or method == "none":
                continue
            if method == "unscoped" and rel in UNSCOPED_ALLOWED:
                continue
            if method == "create" and re.search(r"\borg(_id)?=", text[match.end(): match.end() + 80]):
                continue
            line = text[: match.start()].count("\n") + 1
            problems.append(f"{rel}:{line}: {model}.objects.{method}(...)")
    assert not problems, "unscoped access to org-scoped models:\n" + "\n".join(problems)
