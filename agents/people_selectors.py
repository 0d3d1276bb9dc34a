"""Reads about one member's agents, for the member pages: the agents they own, the delegations they
granted, and what their leaving would do to agents (the remove-member confirmation).

Read-only, and a fixed number of queries whatever the member holds. What leaving does is decided by
`agents.services.agents_release_owner` (the departure handler); `departure_preview` reads the same
three relations it walks (owned, registered, holding a live secret handed to the member) and the
same fallback rule, so the confirmation says what the handler will do.
"""

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import ACTING_STATUSES, Membership
from agents.delegation import live_delegations
from agents.models import Agent, AgentSecret, AgentStatus, Delegation
from agents.services import _fallback_owner  # the handler's own rule, so the preview cannot drift
from core.credentials import credential_live_q

PANEL_ROWS = 50


@dataclass(frozen=True)
class Shown:
    """At most PANEL_ROWS rows of a panel, and how many there are in all."""

    rows: list
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def _shown(queryset) -> Shown:
    """Two queries always (the rows, the count), so a page showing it costs the same at any size."""
    return Shown(rows=list(queryset[:PANEL_ROWS]), total=queryset.count())


def agents_owned_by(membership: Membership) -> Shown:
    """The agents this member owns, by name."""
    return _shown(Agent.objects.for_org(membership.org_id).filter(owners=membership).order_by("name", "pk"))


def delegations_granted_by(membership: Membership) -> Shown:
    """The delegations this member granted (to agents acting for them), newest first."""
    return _shown(Delegation.objects.for_org(membership.org_id).filter(membership=membership)
                  .select_related("agent").order_by("-created_at", "pk"))


def _live_secrets_handed_to(membership: Membership, now):
    return (AgentSecret.objects.for_org(membership.org_id).filter(created_by_id=membership.user_id)
            .filter(credential_live_q(now)))


@dataclass(frozen=True)
class AgentDeparture:
    """What removing a member does to agents: counts, as `agents_release_owner` would act."""

    secrets_ended: int  # live agent secrets handed to them
    keep_running: int  # agents with another acting owner: the member just comes off
    reassigned: int  # agents left with no acting owner, handed to the org's fallback owner
    suspended: int  # agents left with no acting owner and no fallback: suspended with their secrets
    fallback: Membership | None
    delegations_revoked: int  # live delegations they granted

    @property
    def agents(self) -> int:
        return self.keep_running + self.reassigned + self.suspended


def departure_preview(membership: Membership) -> AgentDeparture:
    """What the departure handlers of this app would do if `membership` left now. Four queries."""
    now = timezone.now()
    org_id = membership.org_id
    held = _live_secrets_handed_to(membership, now)
    other_owner = (Agent.owners.through.objects.filter(agent_id=OuterRef("pk"),
                                                       membership__status__in=ACTING_STATUSES)
                   .exclude(membership_id=membership.pk))
    answered = (Agent.objects.for_org(org_id)
                .filter(Q(owners=membership) | Q(created_by_id=membership.user_id)
                        | Q(pk__in=held.values("agent_id")))
                .exclude(status=AgentStatus.REVOKED)
                .annotate(other_owner=Exists(other_owner))
                .values_list("pk", "other_owner").distinct())
    flags = dict(answered)
    orphaned = sum(1 for other in flags.values() if not other)
    fallback = _fallback_owner(membership.org, membership) if orphaned else None
    return AgentDeparture(
        secrets_ended=held.count(),
        keep_running=len(flags) - orphaned,
        reassigned=orphaned if fallback is not None else 0,
        suspended=0 if fallback is not None else orphaned,
        fallback=fallback,
        delegations_revoked=live_delegations(
            Delegation.objects.for_org(org_id).filter(membership=membership), now).count(),
    )
