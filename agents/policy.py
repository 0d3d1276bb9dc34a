"""The org's agent settings (agents.AgentPolicy): reading them, and the one service that changes them."""

from django.db import transaction

from agents.models import AgentPolicy
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Invalid
from core.org_settings import settings_apply

AGENT_POLICY_FIELDS = ("agent_token_ttl_seconds", "secret_overlap_max_seconds", "secret_max_age_days",
                       "token_alg",
                       "deprovision_agents", "deprovision_fallback_owner", "max_delegation_depth",
                       "delegation_max_lifetime_seconds", "delegation_refresh_tokens",
                       "delegations_end_with_session")


def agent_policy_for_org(org) -> AgentPolicy:
    """The org's row, or the defaults when nobody has changed them."""
    try:
        return org.agent_policy
    except AgentPolicy.DoesNotExist:
        return AgentPolicy(org=org)


@records_denials
@transaction.atomic
def agent_policy_set(*, org, actor: Actor, **changes) -> AgentPolicy:
    """Change the org's agent settings; each applies at the next token issuance, rotation,
    departure of an owner or approval of a delegation (a delegation already approved keeps the
    lifetime it was given)."""
    fallback = changes.get("deprovision_fallback_owner")
    if fallback is not None and (fallback.org_id != org.pk or not fallback.can_act):
        message = "Choose an active member of this organization."
        raise Invalid(message, fields={"deprovision_fallback_owner": [message]})
    policy = AgentPolicy.objects.for_org(org).select_for_update().first() or AgentPolicy(org=org)
    changed = settings_apply(policy, changes, AGENT_POLICY_FIELDS)
    audit_record(org=org, actor=actor, event=AuditEvent.POLICY_CHANGED, target=Target.of(org),
                 data={"fields": sorted(changed), "previous": changed})
    return policy
