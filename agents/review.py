"""Agents in the access-review export: each with its owners, grant, what its owners can still hand
it now (the effective permissions column) and when its secret last changed, followed by its live
delegations: each person it may act for, with what they approved (one row each)."""

from itertools import islice

from django.db.models import OuterRef, Prefetch, Subquery
from django.utils import timezone

from accounts.models import ACTING_STATUSES, Membership
from agents.delegation import live_delegations
from agents.grants import delegable_scopes
from agents.models import Agent, AgentSecret, Delegation
from audit.exports import CHUNK, ReviewSource, iso
from rbac.selectors import memberships_permissions


def _delegation_row(agent, delegation: Delegation) -> list:
    scopes = " ".join(sorted(delegation.scopes))
    return [
        "delegation", delegation.pk, f"{agent.name} for {delegation.person_email}", delegation.person_email,
        "active", "manual", "", "", "", scopes, "", "", iso(delegation.created_at), delegation.person_email,
        scopes, delegation.audience, "",
    ]


def _live_delegations(org, chunk: list) -> dict:
    """{agent id: its live delegations, oldest first} for a chunk of agents, in one query."""
    by_agent: dict = {}
    rows = live_delegations(Delegation.objects.for_org(org).filter(agent__in=chunk), timezone.now())
    for delegation in rows.order_by("created_at", "pk"):
        by_agent.setdefault(delegation.agent_id, []).append(delegation)
    return by_agent


def _rows(org, chunk: list) -> list:
    acting = {o.pk: o.role for agent in chunk for o in agent.owners.all() if o.status in ACTING_STATUSES}
    perms = memberships_permissions(org_id=chunk[0].org_id, roles=acting)
    delegations = _live_delegations(org, chunk)
    rows = []
    for agent in chunk:
        owners = list(agent.owners.all())
        delegable = delegable_scopes(agent.scopes, [perms[o.pk] for o in owners if o.pk in perms])
        rows.append([
            "agent", agent.pk, agent.name, "", agent.status, "", "", "", "", " ".join(sorted(delegable)),
            "", "", iso(agent.created_at), "; ".join(sorted(o.user.email for o in owners)),
            " ".join(agent.scopes), " ".join(agent.audiences), iso(agent.secret_rotated_at),
        ])
        rows.extend(_delegation_row(agent, d) for d in delegations.get(agent.pk, ()))
    return rows


def agent_rows(org):
    """Agents in chunks, each followed by its live delegations: per chunk one query for the agents
    (newest secret's time as a subquery), one for their owners with users, one for those owners'
    roles, one for the chunk's live delegations: four, however many."""
    newest_secret = AgentSecret.objects.filter(agent=OuterRef("pk")).order_by("-created_at")
    agents = (
        Agent.objects.for_org(org)
        .annotate(secret_rotated_at=Subquery(newest_secret.values("created_at")[:1]))
        .prefetch_related(Prefetch("owners", queryset=Membership.objects.for_org(org).select_related("user")))
        .order_by("created_at", "pk")
        .iterator(chunk_size=CHUNK)
    )
    while chunk := list(islice(agents, CHUNK)):
        yield from _rows(org, chunk)


def agent_rows_count(org) -> int:
    return (Agent.objects.for_org(org).count()
            + live_delegations(Delegation.objects.for_org(org)).count())


AGENTS = ReviewSource(rows=agent_rows, count=agent_rows_count)
