"""Agents' client secrets: issued, rotated without downtime, ended.

At most two secrets of an agent are live: the current one and, during a rotation window, the
previous one, whose `expires_at` ends it at authentication time whether or not any worker runs.
Ending a secret writes its revocation cutoff, so tokens issued under it die at their next check.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from agents import revocation
from agents.models import Agent, AgentSecret, AgentStatus
from agents.policy import agent_policy_for_org
from agents.runs import runs_end_for_agent
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, Invalid

DEFAULT_OVERLAP = timedelta(hours=1)


def assert_not_revoked(agent: Agent) -> None:
    if agent.status == AgentStatus.REVOKED:
        raise Conflict("This agent is revoked.", code="agent_revoked")


def agent_secret_create(agent: Agent, created_by=None) -> tuple[AgentSecret, str]:
    """A new secret row; returns it with the secret, shown once and stored nowhere. Under an org's
    maximum secret age it expires then, by timestamp, whether or not anyone rotates it."""
    fields, display = AgentSecret.mint()
    max_age = agent_policy_for_org(agent.org).secret_max_age_days
    if max_age:
        fields["expires_at"] = timezone.now() + timedelta(days=max_age)
    return AgentSecret.objects.create(agent=agent, created_by=created_by, **fields), display


def _live(agent: Agent, now) -> list[AgentSecret]:
    return [s for s in agent.secrets.order_by("-created_at") if s.is_live(now)]


def overlap_check(policy, overlap_seconds: int | None) -> timedelta:
    """The rotation window asked for, or Invalid when the org's policy does not allow it. Pages call
    it before they ask for confirmation, so a person never confirms a window that is then refused."""
    overlap = DEFAULT_OVERLAP if overlap_seconds is None else timedelta(seconds=overlap_seconds)
    if overlap < timedelta(0) or overlap.total_seconds() > policy.secret_overlap_max_seconds:
        raise Invalid("The overlap window is outside the org's policy.", fields={"overlap_seconds": [
            f"Between 0 and {policy.secret_overlap_max_seconds} seconds."]})
    return overlap


@records_denials
@transaction.atomic
def agent_secret_rotate(*, agent: Agent, actor: Actor, overlap_seconds: int | None = None, created_by=None):
    """A new secret now; the previous one keeps working until the end of the overlap window.

    Returns (new secret, previous secret's end). The agent row is locked, so concurrent rotations
    leave exactly one new secret, and at most two secrets are ever live.
    """
    agent = Agent.objects.for_org(agent.org_id).select_for_update().get(pk=agent.pk)
    assert_not_revoked(agent)
    overlap = overlap_check(agent_policy_for_org(agent.org), overlap_seconds)
    now = timezone.now()
    live = _live(agent, now)
    current, older = (live[0], live[1:]) if live else (None, [])
    for stale in older:  # a previous window still open ends now: never three live secrets
        secret_end(actor, stale, now, how="superseded")
    previous_end = None
    if current is not None:
        # The window never lengthens a secret the org's maximum age already ends sooner.
        previous_end = min(now + overlap, current.expires_at or now + overlap)
        current.expires_at = previous_end
        current.save(update_fields=["expires_at"])
        if overlap == timedelta(0):
            secret_end(actor, current, now, how="immediate")
    secret, display = agent_secret_create(agent, created_by)
    audit_record(org=agent.org, actor=actor, event=AuditEvent.SECRET_ROTATED, target=Target.of(agent),
                 data={"secret": str(secret.pk), "previous": str(current.pk) if current else None,
                       "previous_expires_at": previous_end})
    return display, previous_end


# Ends that revoke a secret (an immediate rotation, its holder or the agent's last owner gone),
# rather than complete a rotation: the agent's runs end with it.
REVOKING = ("immediate", "holder_departed", "owner_deprovisioned")


def secret_end(actor: Actor | None, secret: AgentSecret, now, *, how: str) -> None:
    """End one secret now (within the caller's transaction): by timestamp, and by cutoff for the
    tokens it got. A revoked secret (REVOKING) also terminates the agent's runs."""
    secret.expires_at = min(secret.expires_at or now, now)
    secret.window_closed_audited = True
    secret.save(update_fields=["expires_at", "window_closed_audited"])
    revocation.cut_off("cred", str(secret.pk))
    actor = actor or Actor.system("rotation")
    audit_record(org=secret.agent.org, actor=actor,
                 event=AuditEvent.SECRET_WINDOW_ENDED, target=Target.of(secret.agent),
                 data={"secret": str(secret.pk), "how": how})
    if how in REVOKING:
        runs_end_for_agent(agent=secret.agent, actor=actor, reason="secret_revoked")


@transaction.atomic
def agent_secret_end_previous(*, agent: Agent, actor: Actor) -> int:
    """End the rotation window now: only the newest secret keeps working, at once."""
    agent = Agent.objects.for_org(agent.org_id).select_for_update().get(pk=agent.pk)
    now = timezone.now()
    older = _live(agent, now)[1:]
    for secret in older:
        secret_end(actor, secret, now, how="ended_early")
    return len(older)


@transaction.atomic
def rotation_windows_record(*, now=None) -> int:
    """Record the end of rotation windows that have passed. The old secret already stopped working
    at its `expires_at` (checked at authentication); this writes the audit entry, once each."""
    now = now or timezone.now()
    ended = (AgentSecret.objects.unscoped()  # a system job over every org
             .select_for_update(skip_locked=True).select_related("agent__org")
             .filter(expires_at__lte=now, window_closed_audited=False).order_by("pk"))
    count = 0
    for secret in ended:
        audit_record(org=secret.agent.org, actor=Actor.system("rotation"),
                     event=AuditEvent.SECRET_WINDOW_ENDED,
                     target=Target.of(secret.agent), data={"secret": str(secret.pk), "how": "expired"})
        AgentSecret.objects.unscoped().filter(pk=secret.pk).update(window_closed_audited=True)
        count += 1
    return count
