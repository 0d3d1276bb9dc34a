"""Policy wrappers for trust: what the admin pages and the admin API call. Each takes the caller's
`Access`, checks that everything it names is of the caller's org, then calls one effect
(trust.services) or evaluation (trust.scoring) with the caller as actor. The permission each needs
(trust:read, trust:write) is the view's declaration. Writes run in one transaction with their
effect, so a refusal the effect audits is rolled back with it and recorded once, after the rollback."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import records_denials
from core.errors import Forbidden
from rbac.access import Access
from rbac.authorization import assert_in_org
from trust import scoring, services
from trust.models import ScoreSample


def _by_a_person(access: Access) -> None:
    """Trust is what others say of an agent: no agent (its token may carry trust:* scopes) changes
    the policy, roots, gates or attestations, nor decides an approval."""
    if access.actor.type == "agent":
        raise Forbidden("Agents may not change trust settings or decide approvals.", code="agent_not_allowed")


# A reader polling the trust panel keeps at most one history sample a minute: the chart needs no
# more, and a GET that wrote on every call would let any reader grow the table without bound.
SAMPLE_INTERVAL_SECONDS = 60


@records_denials
@transaction.atomic
def trust_policy_update(*, access: Access, **changes):
    _by_a_person(access)
    return services.trust_policy_set(org=access.org, actor=access.actor, **changes)


@records_denials
@transaction.atomic
def trust_root_add(*, access: Access, name: str, jwks):
    _by_a_person(access)
    return services.trust_root_create(org=access.org, name=name, jwks=jwks, actor=access.actor,
                                      created_by=access.creator_user)


@records_denials
@transaction.atomic
def trust_root_remove(*, access: Access, root) -> None:
    _by_a_person(access)
    assert_in_org(access, root)
    services.trust_root_delete(root=root, actor=access.actor)


@records_denials
@transaction.atomic
def attestation_submit(*, access: Access, agent, compact: str):
    """Record a signed statement about `agent`; a refusal is audited by the effect. Anyone with
    trust:write may post one, an agent too: it counts only if a registered root signed it."""
    assert_in_org(access, agent)
    return services.attestation_add(agent=agent, compact=compact, actor=access.actor)


@records_denials
def agent_trust(*, access: Access, agent, now=None) -> scoring.Evaluation:
    """The agent's score now, kept in its history when the last sample is older than a minute."""
    assert_in_org(access, agent)
    now = now or timezone.now()
    last = (ScoreSample.objects.for_org(access.org).filter(agent=agent).order_by("-at")
            .values_list("at", flat=True).first())
    due = last is None or now - last >= timedelta(seconds=SAMPLE_INTERVAL_SECONDS)
    return scoring.trust_evaluate(agent, now=now, record=due)


# Dispatch, gates and approvals --------------------------------------------------------------


def run_dispatch(*, access: Access, agent, description: str = "", operation=None, audiences=None,
                 claims: dict | None = None):
    """Dispatch a run through the gates (trust.runs); the dispatcher is the caller, and the person
    behind them (a session's user, an API key's holder, the person an agent's token acts for) is
    kept for separation of duties. An agent dispatching with its token (`claims`) records the
    delegation chain, root first."""
    from agents.chain import principals
    from trust import runs

    assert_in_org(access, agent)
    person, chain = access.creator_user or access.user, ()
    if claims:
        chain = principals(claims)
        if chain[0].startswith("user:"):
            from accounts.models import User

            person = User.objects.filter(pk=chain[0].removeprefix("user:")).first()
    return runs.run_dispatch(agent=agent, actor=access.actor, description=description, operation=operation,
                             audiences=audiences, requested_by_user=person, chain=chain)


@records_denials
@transaction.atomic
def trust_gate_add(*, access: Access, **fields):
    _by_a_person(access)
    from trust import gates

    return gates.trust_gate_create(org=access.org, actor=access.actor, **fields)


@records_denials
@transaction.atomic
def trust_gate_change(*, access: Access, gate, **fields):
    _by_a_person(access)
    from trust import gates

    assert_in_org(access, gate)
    return gates.trust_gate_update(gate=gate, actor=access.actor, **fields)


@records_denials
@transaction.atomic
def trust_gate_remove(*, access: Access, gate) -> None:
    _by_a_person(access)
    from trust import gates

    assert_in_org(access, gate)
    gates.trust_gate_delete(gate=gate, actor=access.actor)


def approval_decide(*, access: Access, approval, approve: bool, comment: str = ""):
    """Approve or deny an escalated run as the person behind the caller (an API key decides as the
    member who holds it; the pages also ask for a recent sign-in)."""
    _by_a_person(access)
    from trust import runs

    assert_in_org(access, approval)
    return runs.approval_decide(approval=approval, approve=approve, user=access.user or access.creator_user,
                                actor=access.actor, comment=comment)
