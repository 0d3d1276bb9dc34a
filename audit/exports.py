"""The access-review export: one CSV row per principal, streamed so memory stays flat.

Humans come first, then agents. Rows are read in chunks with their roles and teams (humans) or
owners (agents) prefetched per chunk (a constant number of queries per chunk), written through csv's
RFC 4180 quoting, and defused against formula injection (OWASP: a cell that begins with = + - @, a
tab or a carriage return is prefixed with ').
"""

import csv
from itertools import islice

from django.db.models import OuterRef, Prefetch, Subquery
from django_otp import device_classes

from accounts.models import ACTING_STATUSES, Membership, RecoveryCodeDevice
from agents.grants import delegable_scopes
from agents.models import Agent, AgentSecret
from core.permissions import perms_from_strings
from core.roles import BUILTIN_ROLES
from rbac.models import Role, TeamMembership
from rbac.selectors import memberships_permissions

COLUMNS = [
    "principal_type", "principal_id", "name", "email", "status", "source", "org_role",
    "custom_roles", "teams", "effective_permissions", "mfa_enrolled", "last_login_at",
    "created_at", "owner", "scopes", "audiences", "secret_rotated_at",
]
CHUNK = 2000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        text = "'" + text
    return text.replace("\0", "")


def _iso(dt) -> str:
    return dt.isoformat() if dt else ""


def _human_row(membership: Membership, mfa_users: set) -> list:
    custom = list(membership.custom_roles.all())
    team_memberships = list(membership.team_memberships.all())
    perms = set(BUILTIN_ROLES[membership.role]) if membership.can_act else set()
    if membership.can_act:
        for role in custom:
            perms |= role.perms
        for tm in team_memberships:
            for role in tm.team.roles.all():
                perms |= perms_from_strings(role.permissions)
    user = membership.user
    return [
        "human", user.pk, user.display_name, user.email, membership.status, membership.source,
        membership.role, "; ".join(sorted(r.name for r in custom)),
        "; ".join(sorted(f"{tm.team.name} ({tm.role})" for tm in team_memberships)),
        " ".join(sorted(perms)), "yes" if user.pk in mfa_users else "no",
        _iso(user.last_login), _iso(membership.created_at), "", "", "", "",
    ]


def _agent_rows(chunk: list) -> list:
    acting = {o.pk: o.role for agent in chunk for o in agent.owners.all() if o.status in ACTING_STATUSES}
    perms = memberships_permissions(org_id=chunk[0].org_id, roles=acting) if chunk else {}
    rows = []
    for agent in chunk:
        owners = list(agent.owners.all())
        delegable = delegable_scopes(agent.scopes, [perms[o.pk] for o in owners if o.pk in perms])
        rows.append([
            "agent", agent.pk, agent.name, "", agent.status, "", "", "", "", " ".join(sorted(delegable)),
            "", "", _iso(agent.created_at), "; ".join(sorted(o.user.email for o in owners)),
            " ".join(agent.scopes), " ".join(agent.audiences), _iso(agent.secret_rotated_at),
        ])
    return rows


def _agent_chunks(org):
    """Agents in chunks of CHUNK: per chunk one query for the agents (newest secret's time as a
    subquery), one for their owners with users, one for those owners' roles: three, however many."""
    newest_secret = AgentSecret.objects.filter(agent=OuterRef("pk")).order_by("-created_at")
    agents = (
        Agent.objects.for_org(org)
        .annotate(secret_rotated_at=Subquery(newest_secret.values("created_at")[:1]))
        .prefetch_related(Prefetch("owners", queryset=Membership.objects.for_org(org).select_related("user")))
        .order_by("created_at", "pk")
        .iterator(chunk_size=CHUNK)
    )
    while chunk := list(islice(agents, CHUNK)):
        yield chunk


def _mfa_enrolled_users(org) -> set:
    """Members with a confirmed authenticator app or passkey (recovery codes alone are a backup)."""
    users = set()
    for model in device_classes():
        if model is not RecoveryCodeDevice:
            users |= set(model.objects.filter(confirmed=True, user__memberships__org=org)
                         .values_list("user_id", flat=True))
    return users


def access_review_rows(org):
    """Yield the header, then one list per principal: every human, then every agent."""
    yield COLUMNS
    mfa_users = _mfa_enrolled_users(org)
    memberships = (
        Membership.objects.for_org(org)
        .select_related("user")
        .prefetch_related(
            Prefetch("custom_roles", queryset=Role.objects.for_org(org)),
            Prefetch(
                "team_memberships",
                queryset=TeamMembership.objects.select_related("team").prefetch_related("team__roles"),
            ),
        )
        .order_by("created_at", "pk")
    )
    for membership in memberships.iterator(chunk_size=CHUNK):
        yield _human_row(membership, mfa_users)
    for chunk in _agent_chunks(org):
        yield from _agent_rows(chunk)


class _Echo:
    def write(self, value):
        return value


def access_review_csv(org):
    """Encoded CSV lines, ready for a StreamingHttpResponse."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    for row in access_review_rows(org):
        yield writer.writerow([safe_cell(cell) for cell in row]).encode("utf-8")


def access_review_count(org) -> int:
    return Membership.objects.for_org(org).count() + Agent.objects.for_org(org).count()
