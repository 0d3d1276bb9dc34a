"""What needs an admin's attention among the org's agents, for the overview (core.attention)."""

from django.urls import reverse
from django.utils import timezone

from agents.models import Agent, AgentStatus
from agents.policy import agent_policy_for_org
from agents.selectors import agents_secret_over_age_q, agents_unused_q
from core.attention import WARNING, Attention, AttentionSource
from core.permissions import Perm


def _agents(count: int, verb: str, verbs: str) -> str:
    return f"{count} agent {verb}" if count == 1 else f"{count} agents {verbs}"


def agents_attention(org) -> list[Attention]:
    """Active agents holding a live secret older than the org's maximum secret age (made before it
    was set: newer ones expire on their own), and active agents no secret of which was used for 90
    days. Three queries whatever the org's size."""
    now = timezone.now()
    items = []
    url = reverse("agents:agents", kwargs={"org": org.slug})
    max_age = agent_policy_for_org(org).secret_max_age_days
    if max_age:
        old = (Agent.objects.for_org(org).filter(status=AgentStatus.ACTIVE)
               .filter(agents_secret_over_age_q(org, now)).count())
        if old:
            items.append(Attention(
                key="agents.secret_too_old", count=old, severity=WARNING, url=f"{url}?secret=old",
                title=f"{_agents(old, 'uses', 'use')} a secret older than {max_age} days",
                detail="The org's maximum secret age came after these secrets: rotate them."))
    unused = Agent.objects.for_org(org).filter(agents_unused_q(org, now)).count()
    if unused:
        items.append(Attention(
            key="agents.unused", count=unused, severity=WARNING, url=f"{url}?unused=90",
            title=f"{_agents(unused, 'was', 'were')} not used for 90 days",
            detail="An active agent nobody uses is a credential nobody watches: suspend or revoke it."))
    return items


AGENTS = AttentionSource(perm=Perm.AGENT_READ, collect=agents_attention)
