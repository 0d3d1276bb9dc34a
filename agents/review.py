"""Agents in the access-review export: each with its owners, grant, what its owners can still hand
it now (the effective permissions column) and when its secret last changed."""

from itertools import islice

from django.db.models import OuterRef, Prefetch, Subquery

from accounts.models import ACTING_STATUSES, Membership
from agents.grants import delegable_scopes
from agents.models import Agent, AgentSecret
from audit.exports import CHUNK, ReviewSource, iso
from rbac.selectors import memberships_permissions


def _rows(chunk: list) -> list:
    acting = {o.pk: o.role for agent in chunk for o in agent.owners.all() if o.status in ACTING_STATUSES}
    perms = memberships_permissions(org_id=chunk[0].org_id, roles=acting)
    rows = []
    for agent in chunk:
        owners = list(agent.owners.all())
        delegable = delegable_scopes(agent.scopes, [perms[o.pk] for o in owners if o.pk in perms])
        rows.append([
            "agent", agent.pk, agent.name, "", agent.status, "", "", "", "", " ".join(sorted(delegable)),
            "", "", iso(agent.created_at), "; ".join(sorted(o.user.email for o in owners)),
            " ".join(agent.scopes), " ".join(agent.audiences), iso(agent.secret_rotated_at),
        ])
    return rows


def agent_rows(org):
    """Agents in chunks: per chunk one query for the agents (newest secret's time as a subquery),
    one for their owners with users, one for those owners' roles: three, however many."""
    newest_secret = AgentSecret.objects.filter(agent=OuterRef("pk")).order_by("-created_at")
    agents = (
        Agent.objects.for_org(org)
        .annotate(secret_rotated_at=Subquery(newest_secret.values("created_at")[:1]))
        .prefetch_related(Prefetch("owners", queryset=Membership.objects.for_org(org).select_related("user")))
        .order_by("created_at", "pk")
        .iterator(chunk_size=CHUNK)
    )
    while chunk := list(islice(agents, CHUNK)):
        yield from _rows(chunk)


AGENTS = ReviewSource(rows=agent_rows, count=lambda org: Agent.objects.for_org(org).count())
