"""An agent's trust score for "now": weighted components, each with its reasons.

    score = Σ weight_c · component_c / Σ weight_c        (each component 0..100, weights per org)

Every signal fades with the org's half-life: it weighs w · 0.5^(age / half-life), so an agent
recovers; signals older than ten half-lives are not read.

- identity (starts at 100): a newest live client secret older than the org's maximum age costs 40
  (from the moment it is older, to the second), having no live secret at all 50. What the product
  observed at the token endpoint counts against it too: each authentication failure 5, each token
  request from outside the agent's networks 10, fading, together at most 40.
- behaviour (starts at 50, no history being neutral): each signal a downstream service reported
  moves it by its severity (low 5, medium 15, high 30, critical 50; a positive review upwards), and
  each scope or audience the token endpoint refused costs 5 (low). Positive reviews together lift it
  by at most 30, however many there are.
- compliance (starts at 100): a version outside the list its owners approved (when they keep one)
  costs 60, none reported yet 30; each attestation type the org requires and the agent lacks costs
  its share of the remaining 40. Only an attestation that vouches (weight > 0) holds its type.
- attestations (starts at 50): plus the weight of each live attestation from a registered root;
  an expired one stops counting by its timestamp.

The signals read: the newest SIGNALS_PER_KIND of each (type, severity), in one query (a window
function), so a flood of one kind (positive reviews, failed logins) never pushes another out of
what is read; what a kind's older rows would add is at most what its newest already weigh, and the
query count does not grow with the agent's history.

A collapse is not averaged away: while behaviour without the positive reviews is below 10 (two
fresh high or one critical signal), the score is capped at it, so the agent falls below the floor
and is contained (trust.containment) until the signals fade; reviews cannot buy the cap away.

An agent that is not active (suspended, contained, revoked) scores 0, untrusted, with that reason,
and none of its inputs is read.

Levels: untrusted (0–19), provisional (20–39), standard (40–59), elevated (60–79), trusted (80–100).
Nothing a client says about itself is read: the inputs are rows the product verified or recorded.
The evaluation says until when it holds (`valid_until`: the earliest of its live attestations' and
live secrets' expiries, the moment the newest live secret passes the maximum age, and
RECHECK_SECONDS from now), so a cache of it can never outlive what it was computed from.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from agents.models import AgentSecret, AgentStatus
from trust.models import Attestation, ScoreSample, SignalType, TrustSignal
from trust.services import (
    AUDIENCE_REFUSED,
    AUTHENTICATION_FAILURE,
    IDENTITY_SIGNAL_KINDS,
    SCOPE_REFUSED,
    UNEXPECTED_NETWORK,
    trust_policy_for_org,
)

LEVELS = ((80, "trusted"), (60, "elevated"), (40, "standard"), (20, "provisional"), (0, "untrusted"))
SEVERITY_WEIGHT = {"low": 5, "medium": 15, "high": 30, "critical": 50}
SIGNAL_HORIZON_HALF_LIVES = 10  # older signals weigh under 0.1 % of what they did: not read
BEHAVIOUR_CAP = 10  # behaviour below this caps the score (see trust_evaluate)
SIGNALS_PER_KIND = 100  # newest read of each (type, severity): 100 fresh lows already weigh 500
POSITIVE_REVIEWS_CAP = 30  # positive reviews together lift behaviour by at most this
IDENTITY_SIGNAL_WEIGHT = {AUTHENTICATION_FAILURE: 5, UNEXPECTED_NETWORK: 10}
IDENTITY_SIGNALS_CAP = 40
SIGNAL_LABELS = {
    **{value: label.lower() for value, label in SignalType.choices},
    AUTHENTICATION_FAILURE: "authentication failure",
    UNEXPECTED_NETWORK: "token request from an unexpected network",
    SCOPE_REFUSED: "scope refused",
    AUDIENCE_REFUSED: "audience refused",
}
COMPONENTS = ("identity", "behaviour", "compliance", "attestations")
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


def _newest_live_secret(secrets, now):
    live = [s for s in secrets if s.is_live(now)]
    return max(live, key=lambda s: s.created_at) if live else None


@dataclass
class Kind:
    """The signals read of one (type, severity): how many, how much they weigh now, the newest."""

    type: str
    severity: str
    count: int = 0
    weight: float = 0.0
    newest_age: float = 0.0

    def reason(self, component: str, sign: str, *, severity: bool = True) -> str:
        what = SIGNAL_LABELS.get(self.type, self.type) + (f" ({self.severity})" if severity else "")
        many = f" ×{self.count}, newest" if self.count > 1 else ","
        return f"{component}: {what}{many} {_ago(self.newest_age)} ago: {sign}{self.weight:.0f}"


def _kinds(policy, now, signals, unit) -> list[Kind]:
    """The signals grouped by (type, severity), each row weighed `unit(row)`, faded by its age."""
    kinds: dict[tuple, Kind] = {}
    for signal in signals:
        age = max(0.0, (now - signal.at).total_seconds())
        key = (signal.type, signal.severity)
        kind = kinds.setdefault(key, Kind(signal.type, signal.severity, newest_age=age))
        kind.count += 1
        kind.weight += unit(signal) * 0.5 ** (age / policy.signal_half_life_seconds)
        kind.newest_age = min(kind.newest_age, age)
    return sorted(kinds.values(), key=lambda k: -k.weight)


def _identity(agent, policy, now, secrets, signals) -> Component:
    component = Component(100.0, policy.weight_identity)
    newest = _newest_live_secret(secrets, now)
    if newest is None:
        component.score -= 50
        component.reasons.append("identity: no live client secret")
    elif now - newest.created_at > timedelta(days=policy.secret_max_age_days):
        age_days = (now - newest.created_at).days
        old = f"{age_days} days old" if age_days > policy.secret_max_age_days else (
            f"over {policy.secret_max_age_days} days old")
        component.score -= 40
        component.reasons.append(
            f"identity: client secret is {old} (the organization allows {policy.secret_max_age_days})"
        )
    observed = _kinds(policy, now, signals, lambda s: IDENTITY_SIGNAL_WEIGHT[s.type])
    total = sum(k.weight for k in observed)
    component.score -= min(total, IDENTITY_SIGNALS_CAP)
    component.reasons.extend(k.reason("identity", "-", severity=False) for k in observed if k.weight >= 0.5)
    if total > IDENTITY_SIGNALS_CAP:
        component.reasons.append(f"identity: what the token endpoint observed counts at most "
                                 f"-{IDENTITY_SIGNALS_CAP}")
    component.score = _clamp(component.score)
    return component


def _behaviour(policy, now, signals) -> tuple[Component, float]:
    """The component, and what it would be without the positive reviews (for the collapse cap)."""
    component = Component(50.0, policy.weight_behaviour)
    kinds = _kinds(policy, now, signals, lambda s: SEVERITY_WEIGHT.get(s.severity, 0))
    negative = sum(k.weight for k in kinds if k.type != SignalType.POSITIVE_REVIEW)
    positive = sum(k.weight for k in kinds if k.type == SignalType.POSITIVE_REVIEW)
    for kind in kinds:
        if kind.weight >= 0.5:
            sign = "+" if kind.type == SignalType.POSITIVE_REVIEW else "-"
            component.reasons.append(kind.reason("behaviour", sign))
    if positive > POSITIVE_REVIEWS_CAP:
        component.reasons.append(f"behaviour: positive reviews count at most +{POSITIVE_REVIEWS_CAP}")
    component.score = _clamp(50.0 - negative + min(positive, POSITIVE_REVIEWS_CAP))
    return component, _clamp(50.0 - negative)


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
    held = {a.type for a in attestations if a.weight > 0}  # a warning (weight <= 0) vouches for nothing
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


def _signals(agent, policy, now) -> list[TrustSignal]:
    """The newest SIGNALS_PER_KIND of each (type, severity) within the horizon: one query."""
    horizon = now - timedelta(seconds=policy.signal_half_life_seconds * SIGNAL_HORIZON_HALF_LIVES)
    rank = Window(RowNumber(), partition_by=[F("type"), F("severity")], order_by=[F("at").desc(), F("id")])
    return list(
        TrustSignal.objects.for_org(agent.org_id)
        .filter(agent=agent, at__gt=horizon)
        .only("type", "severity", "at")
        .annotate(rank=rank)
        .filter(rank__lte=SIGNALS_PER_KIND)
    )


def _inactive(agent, policy, now) -> Evaluation:
    """An agent that may not act scores nothing, whatever its inputs (none is read)."""
    status = "contained" if getattr(agent, "contained_at", None) else agent.status
    reason = "agent is contained (its trust score fell below the organization's floor)" if (
        status == "contained") else f"agent is {status}"
    components = {name: Component(0.0, getattr(policy, f"weight_{name}")) for name in COMPONENTS}
    until = now + timedelta(seconds=RECHECK_SECONDS)
    return Evaluation(0, level_of(0), components, [reason], now, until)


def _valid_until(policy, now, secrets, attestations) -> datetime:
    """The earliest moment an input changes the score by itself (besides the decay's recheck)."""
    moments = [
        now + timedelta(seconds=RECHECK_SECONDS),
        *(a.expires_at for a in attestations),
        *(s.expires_at for s in secrets if s.is_live(now) and s.expires_at),
    ]
    newest = _newest_live_secret(secrets, now)
    if newest is not None:
        too_old = newest.created_at + timedelta(days=policy.secret_max_age_days)
        if too_old > now:
            moments.append(too_old)
    return min(moments)


def trust_evaluate(agent, *, now=None, record: bool = False) -> Evaluation:
    """The agent's score now. Three queries (its secrets, its live attestations with their roots,
    its recent signals) plus the org's policy row when not loaded, whatever the agent's history;
    none for an agent that is not active. `record` keeps a sample for the history chart."""
    now = now or timezone.now()
    policy = trust_policy_for_org(agent.org)
    if agent.status != AgentStatus.ACTIVE:
        evaluation = _inactive(agent, policy, now)
    else:
        evaluation = _active(agent, policy, now)
    if record:
        ScoreSample.objects.create(
            org_id=agent.org_id, agent=agent, at=now, score=evaluation.score, level=evaluation.level
        )
    return evaluation


def _active(agent, policy, now) -> Evaluation:
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
    signals = _signals(agent, policy, now)
    identity_signals = [s for s in signals if s.type in IDENTITY_SIGNAL_KINDS]
    behaviour_signals = [s for s in signals if s.type not in IDENTITY_SIGNAL_KINDS]
    behaviour, without_reviews = _behaviour(policy, now, behaviour_signals)
    components = {
        "identity": _identity(agent, policy, now, secrets, identity_signals),
        "behaviour": behaviour,
        "compliance": _compliance(agent, policy, attestations),
        "attestations": _attestations(policy, attestations),
    }
    total = sum(c.weight for c in components.values()) or 1
    score = round(sum(c.score * c.weight for c in components.values()) / total)
    reasons = [r for c in components.values() for r in c.reasons]
    # A collapse is not averaged away: recent violations that take behaviour (without the positive
    # reviews, which cannot buy it back) below BEHAVIOUR_CAP cap the whole score at that value.
    if behaviour.weight and without_reviews < BEHAVIOUR_CAP and score > without_reviews:
        score = round(without_reviews)
        reasons.insert(0, f"behaviour is {score}: recent violations cap the score")
    until = _valid_until(policy, now, secrets, attestations)
    return Evaluation(score, level_of(score), components, reasons, now, until)


def score_history(agent, *, limit: int = 200) -> list[ScoreSample]:
    return list(ScoreSample.objects.for_org(agent.org_id).filter(agent=agent).order_by("-at")[:limit])
