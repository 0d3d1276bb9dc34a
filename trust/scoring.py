"""An agent's trust score for "now": weighted components, each with its reasons.

    score = Σ weight_c · component_c / Σ weight_c        (each component 0..100, weights per org)

- identity (starts at 100): a live client secret older than the org's maximum age counts against
  it, as does having no live secret at all.
- behaviour (starts at 50, no history being neutral): each signal a downstream service reported
  moves it by its severity (low 5, medium 15, high 30, critical 50; a positive review upwards),
  fading with the org's half-life: w · 0.5^(age / half-life). So an agent recovers.
- compliance (starts at 100): a version outside the list its owners approved (when they keep one)
  costs 60, none reported yet 30; each attestation type the org requires and the agent lacks costs
  its share of the remaining 40.
- attestations (starts at 50): plus the weight of each live attestation from a registered root;
  an expired one stops counting by its timestamp.

A collapse is not averaged away: while behaviour is below 10 (two fresh high or one critical
signal), the score is capped at the behaviour component, so the agent falls below the floor and is
contained (trust.containment) until the signals fade.

Levels: untrusted (0–19), provisional (20–39), standard (40–59), elevated (60–79), trusted (80–100).
Nothing a client says about itself is read: the inputs are rows the product verified or recorded.
The evaluation says until when it holds (`valid_until`: the earliest expiry among its inputs), so a
cache of it can never outlive what it was computed from.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from agents.models import AgentSecret
from trust.models import Attestation, ScoreSample, SignalType, TrustSignal
from trust.services import trust_policy_for_org

LEVELS = ((80, "trusted"), (60, "elevated"), (40, "standard"), (20, "provisional"), (0, "untrusted"))
SEVERITY_WEIGHT = {"low": 5, "medium": 15, "high": 30, "critical": 50}
SIGNAL_HORIZON_HALF_LIVES = 10  # older signals weigh under 0.1 % of what they did: not read
BEHAVIOUR_CAP = 10  # behaviour below this caps the score (see trust_evaluate)
RECHECK_SECONDS = 300  # decay moves the score continuously: nobody may keep an evaluation longer


def level_of(score: int) -> str:
    return next(name for floor, name in LEVELS if score >= floor)


@dataclass
class Component:
    score: float
    weight: int
    reasons: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"score": round(self.score), "weight": self.weight, "reasons": self.reasons}


@dataclass(frozen=True)
class Evaluation:
    score: int
    level: str
    components: dict
    reasons: list
    evaluated_at: datetime
    valid_until: datetime

    def as_dict(self) -> dict:
        return {
            "score": self.score,
            "level": self.level,
            "components": {name: c.as_dict() for name, c in self.components.items()},
            "reasons": self.reasons,
            "evaluated_at": self.evaluated_at.isoformat().replace("+00:00", "Z"),
        }


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))


def _identity(agent, policy, now, secrets) -> Component:
    component = Component(100.0, policy.weight_identity)
    live = [s for s in secrets if s.is_live(now)]
    if not live:
        component.score -= 50
        component.reasons.append("identity: no live client secret")
    else:
        newest = max(s.created_at for s in live)
        age_days = (now - newest).days
        if age_days > policy.secret_max_age_days:
            component.score -= 40
            component.reasons.append(
                f"identity: client secret is {age_days} days old (the organization allows "
                f"{policy.secret_max_age_days})"
            )
    return component


def _behaviour(policy, now, signals) -> Component:
    component = Component(50.0, policy.weight_behaviour)
    half_life = policy.signal_half_life_seconds
    for signal in signals:
        age = max(0.0, (now - signal.at).total_seconds())
        weight = SEVERITY_WEIGHT.get(signal.severity, 0) * 0.5 ** (age / half_life)
        sign = 1 if signal.type == SignalType.POSITIVE_REVIEW else -1
        component.score += sign * weight
        if weight >= 0.5:
            component.reasons.append(
                f"behaviour: {signal.get_type_display().lower()} ({signal.severity}), "
                f"{_ago(age)} ago: {'+' if sign > 0 else '-'}{weight:.0f}"
            )
    component.score = _clamp(component.score)
    return component


def _compliance(agent, policy, attestations) -> Component:
    component = Component(100.0, policy.weight_compliance)
    if agent.approved_versions:
        if not agent.reported_version:
            component.score -= 30
            component.reasons.append("compliance: no version reported yet")
        elif agent.reported_version not in agent.approved_versions:
            component.score -= 60
            component.reasons.append(
                f"compliance: runs version {agent.reported_version}, not an approved one"
            )
    required = list(policy.required_attestations or [])
    held = {a.type for a in attestations}
    missing = [t for t in required if t not in held]
    if missing:
        component.score -= 40 * len(missing) / len(required)
        component.reasons.append("compliance: missing required attestation " + ", ".join(missing))
    component.score = _clamp(component.score)
    return component


def _attestations(policy, attestations) -> Component:
    component = Component(50.0, policy.weight_attestations)
    for attestation in attestations:
        component.score += attestation.weight
        component.reasons.append(
            f"attestations: {attestation.type} from {attestation.root.name} "
            f"{attestation.weight:+d}, until {attestation.expires_at:%Y-%m-%d %H:%M}"
        )
    component.score = _clamp(component.score)
    return component


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def trust_evaluate(agent, *, now=None, record: bool = False) -> Evaluation:
    """The agent's score now. Three queries (its secrets, its live attestations with their roots,
    its recent signals) plus the org's policy row when not loaded, whatever the agent's history;
    `record` keeps a sample for the history chart."""
    now = now or timezone.now()
    policy = trust_policy_for_org(agent.org)
    secrets = list(
        AgentSecret.objects.for_org(agent.org_id)
        .filter(agent=agent)
        .only("created_at", "expires_at", "revoked_at")
    )
    attestations = list(
        Attestation.objects.for_org(agent.org_id)
        .filter(agent=agent, expires_at__gt=now)
        .select_related("root")
        .order_by("expires_at")
    )
    horizon = now - timedelta(seconds=policy.signal_half_life_seconds * SIGNAL_HORIZON_HALF_LIVES)
    signals = list(
        TrustSignal.objects.for_org(agent.org_id).filter(agent=agent, at__gt=horizon).order_by("-at")[:500]
    )
    components = {
        "identity": _identity(agent, policy, now, secrets),
        "behaviour": _behaviour(policy, now, signals),
        "compliance": _compliance(agent, policy, attestations),
        "attestations": _attestations(policy, attestations),
    }
    total = sum(c.weight for c in components.values()) or 1
    score = round(sum(c.score * c.weight for c in components.values()) / total)
    reasons = [r for c in components.values() for r in c.reasons]
    # A collapse is not averaged away: recent violations that take behaviour below BEHAVIOUR_CAP
    # cap the whole score at the behaviour component (two high or one critical signal, fresh).
    behaviour = components["behaviour"]
    if behaviour.weight and behaviour.score < BEHAVIOUR_CAP and score > behaviour.score:
        score = round(behaviour.score)
        reasons.insert(0, f"behaviour is {score}: recent violations cap the score")
    until = min(
        [
            now + timedelta(seconds=RECHECK_SECONDS),
            *(a.expires_at for a in attestations),
            *(s.expires_at for s in secrets if s.is_live(now) and s.expires_at),
        ]
    )
    evaluation = Evaluation(score, level_of(score), components, reasons, now, until)
    if record:
        ScoreSample.objects.create(
            org_id=agent.org_id, agent=agent, at=now, score=score, level=evaluation.level
        )
    return evaluation


def score_history(agent, *, limit: int = 200) -> list[ScoreSample]:
    return list(ScoreSample.objects.for_org(agent.org_id).filter(agent=agent).order_by("-at")[:limit])
