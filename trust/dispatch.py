"""The dispatch decision: whether an agent should be given the next task right now.

Three gates read the agent's score at that moment (trust.scoring, through the cache below):

- the org floor: no agent below it gets a task or a token;
- each connection's minimum (`Connection.min_trust`) for the services the run needs (its
  `audiences`, all of the agent's when none are named);
- the org's policy gates (`TrustGate`) for the run's `operation`: below one, the run is blocked or
  waits for a person's approval, as the gate says.

Any block blocks; else any escalation escalates; else the run is allowed. The same floor and
connection minimum apply at every token issuance for a connection (`issuance_gate`, registered with
agents.issuance), so no grant mints around them. A score the client asserts about itself is never
read: every input is a row the product verified or recorded.

The cache (Django's cache: Redis in production). One round trip reads four keys: the org's
inputs version and its entry (floor, connection minimums, gates), the agent's inputs version and
its score. Every change to an input writes a new random version once it commits (trust.apps wires
the models' signals), so an entry computed from an older snapshot never matches again; a score
entry lives at most until its evaluation's `valid_until`, the earliest expiry among its inputs
(and never more than trust.scoring.RECHECK_SECONDS). A lost key is a miss, never a stale answer. If
the cache cannot be reached the score is computed from the database; if that fails the gate fails
closed (TrustUnavailable).
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from agents.models import Agent, AgentStatus, Connection
from trust.models import ScoreSample, TrustGate, TrustPolicy
from trust.scoring import Evaluation, level_of, trust_evaluate

logger = logging.getLogger(__name__)

ORG_ENTRY_TTL = 3600
SAMPLE_SECONDS = 60


class TrustUnavailable(Exception):
    """The score could not be computed: every gate refuses (fail closed)."""


@dataclass(frozen=True)
class Score:
    """What a gate needs of an evaluation (what the cache keeps)."""

    score: int
    level: str
    reasons: tuple
    evaluated_at: datetime

    @classmethod
    def of(cls, evaluation: Evaluation) -> "Score":
        return cls(evaluation.score, evaluation.level, tuple(evaluation.reasons), evaluation.evaluated_at)


@dataclass(frozen=True)
class OrgTrust:
    floor: int
    minimums: dict  # audience -> min_trust
    gates: tuple  # (name, operation, min_score, below)
    separation_of_duties: bool = True
    approval_ttl_seconds: int = 86400


@dataclass(frozen=True)
class GateOutcome:
    gate: str  # org_floor | connection | gate
    name: str
    min_score: int
    outcome: str  # pass | block | escalate

    def as_dict(self) -> dict:
        return {"gate": self.gate, "name": self.name, "min_score": self.min_score, "outcome": self.outcome}


@dataclass(frozen=True)
class Decision:
    decision: str  # allow | escalate | block
    score: int
    level: str
    reasons: list  # why the gates decided so, then the score's own reasons
    gates: list = field(default_factory=list)

    @property
    def trust(self) -> dict:
        return {"score": self.score, "level": self.level}

    def audit_data(self, **extra) -> dict:
        return {
            "decision": self.decision,
            "score": self.score,
            "level": self.level,
            "reasons": self.reasons,
            "gates": [g.as_dict() for g in self.gates],
            **extra,
        }


# The cache ------------------------------------------------------------------------------------


def _org_version_key(org_id) -> str:
    return f"trust:ov:{org_id}"


def _agent_version_key(agent_id) -> str:
    return f"trust:av:{agent_id}"


def _org_key(org_id) -> str:
    return f"trust:org:{org_id}"


def _score_key(agent_id) -> str:
    return f"trust:score:{agent_id}"


def _bump(key: str) -> None:
    try:
        cache.set(key, uuid.uuid4().hex, None)
    except Exception:
        logger.error("could not invalidate trust cache key %s", key, exc_info=True)


def inputs_changed(*, org_id=None, agent_id=None) -> None:
    """An input of the org's (policy, connection minimums, gates, roots) or of one agent's score
    changed: entries computed before it no longer count. Written now and again once the caller's
    transaction commits (a reader between the two reads the old rows and stores them under the
    version that the second write replaces)."""
    keys = ([_org_version_key(org_id)] if org_id else []) + (
        [_agent_version_key(agent_id)] if agent_id else []
    )
    for key in keys:
        _bump(key)
        transaction.on_commit(lambda key=key: _bump(key))


def _org_trust(org) -> OrgTrust:
    """`org` is an Organization or the token endpoint's OrgRef (only its pk is read)."""
    policy = TrustPolicy.objects.for_org(org.pk).first() or TrustPolicy()
    minimums = dict(
        Connection.objects.for_org(org.pk).filter(min_trust__gt=0).values_list("audience", "min_trust")
    )
    gates = tuple(
        TrustGate.objects.for_org(org.pk)
        .order_by("name")
        .values_list("name", "operation", "min_score", "below")
    )
    return OrgTrust(
        policy.org_floor, minimums, gates, policy.separation_of_duties, policy.approval_ttl_seconds
    )


def _agent_row(agent) -> Agent:
    if isinstance(agent, Agent):
        return agent
    return Agent.objects.for_org(agent.org.pk).select_related("org").get(pk=agent.pk)


def _ensure_version(found: dict, key: str) -> str:
    version = found.get(key)
    if version is None:
        version = uuid.uuid4().hex
        try:
            if not cache.add(key, version, None):
                version = cache.get(key) or version
        except Exception:  # an unreachable cache: this version is used once, and misses next time
            logger.warning("could not write trust cache version %s", key, exc_info=True)
    return version


def trust_now(agent, *, now=None) -> tuple[OrgTrust, Score]:
    """The org's trust settings and the agent's score now, from the cache when its entries still
    hold (one round trip), computed otherwise. `agent` is an agents.models.Agent or the token
    endpoint's AgentRef (whose row is read only on a miss). TrustUnavailable if neither works."""
    now = now or timezone.now()
    org_id, agent_id = agent.org.pk, agent.pk
    keys = [_org_version_key(org_id), _org_key(org_id), _agent_version_key(agent_id), _score_key(agent_id)]
    try:
        found = cache.get_many(keys)
    except Exception:
        logger.warning("trust cache unreachable; computing from the database", exc_info=True)
        found = None
    try:
        if found is None:
            row = _agent_row(agent)
            return _org_trust(row.org), _fresh(row, now)
        org_version = _ensure_version(found, keys[0])
        agent_version = _ensure_version(found, keys[2])
        org_entry = found.get(keys[1])
        if org_entry and org_entry[0] == org_version:
            org_trust = org_entry[1]
        else:
            org_trust = _org_trust(agent.org)
            _store(keys[1], (org_version, org_trust), ORG_ENTRY_TTL)
        entry = found.get(keys[3])
        if entry and entry[0] == (org_version, agent_version) and entry[1] > now.timestamp():
            return org_trust, entry[2]
        row = _agent_row(agent)
        evaluation = trust_evaluate(row, now=now)
        _sample(row, evaluation)
        score = Score.of(evaluation)
        ttl = int(evaluation.valid_until.timestamp() - now.timestamp())
        if ttl > 0:
            _store(keys[3], ((org_version, agent_version), evaluation.valid_until.timestamp(), score), ttl)
        _contain_if_below(row, org_trust, evaluation)
        return org_trust, score
    except TrustUnavailable:
        raise
    except Exception as exc:
        logger.error("trust score could not be computed", exc_info=True)
        raise TrustUnavailable(type(exc).__name__) from exc


def _sample(row: Agent, evaluation: Evaluation) -> None:
    """Keep the score a gate computed in the agent's history (its page's chart), at most once a
    minute per agent (a cache key marks the minute; without the cache, every computation)."""
    try:
        due = cache.add(f"trust:sampled:{row.pk}", 1, SAMPLE_SECONDS)
    except Exception:
        due = True
    if due:
        ScoreSample.objects.create(org_id=row.org_id, agent=row, at=evaluation.evaluated_at,
                                   score=evaluation.score, level=evaluation.level)


def _fresh(row: Agent, now) -> Score:
    evaluation = trust_evaluate(row, now=now)
    _sample(row, evaluation)
    _contain_if_below(row, _org_trust(row.org), evaluation)
    return Score.of(evaluation)


def _store(key, value, ttl) -> None:
    try:
        cache.set(key, value, ttl)
    except Exception:
        logger.warning("could not write trust cache key", exc_info=True)


def _contain_if_below(row: Agent, org_trust: OrgTrust, evaluation: Evaluation) -> None:
    if row.status == AgentStatus.ACTIVE and evaluation.score < org_trust.floor:
        from trust.containment import agent_contain_for_score  # containment reads dispatch's entries

        agent_contain_for_score(row, evaluation, org_trust.floor)


# The gates ------------------------------------------------------------------------------------


def gates_apply(
    org_trust: OrgTrust, score: Score, *, agent_status: str, operation: str | None, audiences
) -> Decision:
    """The decision for a score against the org's gates (no I/O)."""
    outcomes, why = [], []
    if agent_status != AgentStatus.ACTIVE:
        if not any(reason.startswith("agent is ") for reason in score.reasons):
            why.append(f"agent is {agent_status}")
        outcomes.append(GateOutcome("agent", agent_status, 0, "block"))
    floor_ok = score.score >= org_trust.floor
    outcomes.append(GateOutcome("org_floor", "org_floor", org_trust.floor, "pass" if floor_ok else "block"))
    if not floor_ok:
        why.append(f"score {score.score} is below the organization's floor {org_trust.floor}")
    for audience in sorted(set(audiences or ())):
        minimum = org_trust.minimums.get(audience, 0)
        if minimum:
            ok = score.score >= minimum
            outcomes.append(GateOutcome("connection", audience, minimum, "pass" if ok else "block"))
            if not ok:
                why.append(f"score {score.score} is below {audience}'s minimum {minimum}")
    if operation:
        for name, gate_operation, min_score, below in org_trust.gates:
            if gate_operation != operation:
                continue
            ok = score.score >= min_score
            outcomes.append(GateOutcome("gate", name, min_score, "pass" if ok else below))
            if not ok:
                why.append(f"score {score.score} is below gate {name}'s minimum {min_score} for {operation}")
    results = {o.outcome for o in outcomes}
    decision = "block" if "block" in results else "escalate" if "escalate" in results else "allow"
    return Decision(decision, score.score, score.level, why + list(score.reasons), outcomes)


def dispatch_evaluate(agent, *, operation: str | None = None, audiences=None, now=None) -> Decision:
    """The decision for dispatching `agent` now, for `operation` and the services `audiences`
    (all of the agent's when None). Constant cost: one cache round trip when its entries hold."""
    audiences = agent.audiences if audiences is None else audiences
    try:
        org_trust, score = trust_now(agent, now=now)
    except TrustUnavailable:
        return Decision(
            "block",
            0,
            level_of(0),
            ["the trust score could not be computed"],
            [GateOutcome("score", "unavailable", 0, "block")],
        )
    status = agent.status
    return gates_apply(org_trust, score, agent_status=status, operation=operation, audiences=audiences)


def org_trust_for(org) -> OrgTrust:
    """The org's floor, connection minimums and gates, read now (not cached): for writes."""
    return _org_trust(org)


def score_as_active(agent: Agent, *, now=None) -> Score:
    """The score the agent would have if it were active (a contained agent's, to resume it)."""
    import copy

    probe = copy.copy(agent)
    probe.status = AgentStatus.ACTIVE
    return Score.of(trust_evaluate(probe, now=now))
