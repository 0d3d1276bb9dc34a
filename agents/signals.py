"""What the token endpoint observes about an agent, for the layers above (trust.signals listens):
this core imports nothing above it, so it announces and trust decides what each means."""

from django.dispatch import Signal

# agent_id, org_id, kind (authentication_failure | unexpected_network | scope_refused |
# audience_refused), detail (never a secret).
agent_observed = Signal()
# agent_id: an input of its trust score changed without a model save (a reported version).
agent_inputs_changed = Signal()

OBSERVED_REASONS = {
    "bad_secret": "authentication_failure",
    "scope_not_granted": "scope_refused",
    "scope_not_delegated": "scope_refused",
    "resource_not_granted": "audience_refused",
    "resource_unknown": "audience_refused",
}


def observe(agent, kind: str, detail: str = "") -> None:
    agent_observed.send(sender=None, agent_id=agent.pk, org_id=agent.org.pk, kind=kind, detail=detail)
