"""The org's agent settings (agents.AgentPolicy): reading them, and the one service that changes them."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents.models import AgentPolicy
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Invalid

AGENT_POLICY_FIELDS = ("agent_token_ttl_seconds", "secret_overlap_max_seconds", "token_alg",
                       "deprovision_agents", "deprovision_fallback_owner")


def agent_policy_for_org(org) -> AgentPolicy:
    """The org's row, or the defaults when nobody has changed them."""
    try:
        return org.agent_policy
    except AgentPolicy.DoesNotExist:
        return AgentPolicy(org=org)


@records_denials
@transaction.atomic
def agent_policy_set(*, org, actor: Actor, **changes) -> AgentPolicy:
    """Change the org's agent settings; each applies at the next token issuance, rotation or
    departure of an owner."""
    unknown = set(changes) - set(AGENT_POLICY_FIELDS)
    if unknown:
        raise Invalid("Unknown policy settings.", fields={k: ["Unknown setting."] for k in sorted(unknown)})
    fallback = changes.get("deprovision_fallback_owner")
    if fallback is not None and (fallback.org_id != org.pk or not fallback.can_act):
        message = "Choose an active member of this organization."
        raise Invalid(message, fields={"deprovision_fallback_owner": [message]})
    policy = AgentPolicy.objects.for_org(org).select_for_update().first() or AgentPolicy(org=org)
    previous = {name: getattr(policy, name) for name in changes}
    for name, value in changes.items():
        setattr(policy, name, value)
    try:
        policy.full_clean(exclude=["org"])
    except ValidationError as exc:
        raise Invalid("Invalid policy.", fields=exc.message_dict)
    policy.updated_at = timezone.now()
    policy.save()
    changed = sorted(name for name in changes if previous[name] != changes[name])
    audit_record(org=org, actor=actor, event=AuditEvent.POLICY_CHANGED, target=Target.of(org),
                 data={"fields": changed, "previous": {k: previous[k] for k in changed}})
    return policy
