"""Policy gates for classes of operations (trust.models.TrustGate): effects, each audited."""

from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, Invalid
from trust.models import GateBelow, TrustGate
from trust.runs import OPERATION_PATTERN


def _shape(name, operation, min_score, below) -> None:
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise Invalid(
            "A name of at most 100 characters.", fields={"name": ["A name of 1 to 100 characters."]}
        )
    if not isinstance(operation, str) or not OPERATION_PATTERN.match(operation):
        message = "An operation name: letters, digits and . _ : / -, at most 100 characters."
        raise Invalid(message, fields={"operation": [message]})
    if isinstance(min_score, bool) or not isinstance(min_score, int) or not 0 <= min_score <= 100:
        raise Invalid("A score from 0 to 100.", fields={"min_score": ["A score from 0 to 100."]})
    if below not in GateBelow.values:
        raise Invalid("block or escalate.", fields={"below": ["Use block or escalate."]})


def _name_free(org, name, gate=None) -> None:
    taken = TrustGate.objects.for_org(org).filter(name=name)
    if gate is not None:
        taken = taken.exclude(pk=gate.pk)
    if taken.exists():
        raise Conflict("A gate with this name exists.", code="duplicate", fields={"name": ["Taken."]})


@records_denials
def trust_gate_create(*, org, actor: Actor, name, operation, min_score, below=GateBelow.BLOCK) -> TrustGate:
    _shape(name, operation, min_score, below)
    name = name.strip()
    _name_free(org, name)
    gate = TrustGate.objects.create(org=org, name=name, operation=operation, min_score=min_score, below=below)
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.TRUST_GATE_CREATED,
        target=Target("trust_gate", str(gate.pk)),
        data={"name": name, "operation": operation, "min_score": min_score, "below": below},
    )
    return gate


@records_denials
def trust_gate_update(*, gate: TrustGate, actor: Actor, **changes) -> TrustGate:
    gate = TrustGate.objects.for_org(gate.org_id).select_for_update().select_related("org").get(pk=gate.pk)
    fields = ("name", "operation", "min_score", "below")
    previous = {f: getattr(gate, f) for f in fields}
    wanted = {f: changes[f] if changes.get(f) is not None else previous[f] for f in fields}
    _shape(**wanted)
    wanted["name"] = wanted["name"].strip()
    if wanted == previous:
        return gate
    _name_free(gate.org, wanted["name"], gate)
    for field, value in wanted.items():
        setattr(gate, field, value)
    gate.save(update_fields=list(fields))
    audit_record(
        org=gate.org,
        actor=actor,
        event=AuditEvent.TRUST_GATE_CHANGED,
        target=Target("trust_gate", str(gate.pk)),
        data={**wanted, "previous": previous},
    )
    return gate


def trust_gate_delete(*, gate: TrustGate, actor: Actor) -> None:
    audit_record(
        org=gate.org,
        actor=actor,
        event=AuditEvent.TRUST_GATE_DELETED,
        target=Target("trust_gate", str(gate.pk)),
        data={"name": gate.name, "operation": gate.operation},
    )
    gate.delete()
