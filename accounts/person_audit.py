"""Events about a person's own account (signing in, failing to, second factors, re-authentication,
sessions ending): on the platform chain, where the account lives, and in the audit log of every org
the person acts in, whose admins and auditors must see who signs in to their org and how.

An org sees these only for its acting members: an invitation not yet accepted shows it nothing.
A failed sign-in is copied to the orgs by a queued task, as mails are: the number of orgs an
account belongs to must not show in how long a wrong password takes to refuse (an unknown address
has none), or timing would tell who has an account.
"""

from django.db import transaction

from accounts.models import ACTING_STATUSES, Membership
from audit.actors import Actor
from audit.context import RequestContext, current_context
from audit.events import AuditEvent, Outcome
from audit.services import Target, audit_record


def person_record(*, user, event, actor: Actor | None = None, outcome: str = Outcome.SUCCESS,
                  data: dict | None = None, target=None, queued: bool = False) -> None:
    """Record `event` about `user` (None: an unknown account, the platform chain only). `queued`:
    the orgs' copies are written by a task after the caller's transaction commits."""
    actor = actor or (Actor.for_user(user) if user is not None else Actor.anonymous())
    if target is None and user is not None:
        target = Target.of(user)
    audit_record(org=None, actor=actor, event=event, outcome=outcome, target=target, data=data or {})
    if user is None or not user.pk:
        return
    if not queued:
        _to_orgs(user.pk, event, actor, outcome, data or {}, target)
        return
    from accounts.tasks import person_event_to_orgs

    context = current_context.get()
    args = (str(user.pk), event.code, [actor.type, actor.id, actor.display], outcome, data or {},
            [target.type, target.id] if target else None,
            [context.ip, context.user_agent, context.correlation_id])
    transaction.on_commit(lambda: person_event_to_orgs.delay(*args))


def person_event_replay(user_id, event_code, actor, outcome, data, target, context) -> int:
    """The queued half of person_record, in the request's audit context. Returns entries written."""
    token = current_context.set(RequestContext(*context))
    try:
        return _to_orgs(user_id, AuditEvent.from_code(event_code), Actor(*actor), outcome, data,
                        Target(*target) if target else None)
    finally:
        current_context.reset(token)


def _to_orgs(user_id, event, actor, outcome, data, target) -> int:
    memberships = (Membership.objects.unscoped()  # the person's memberships in every org
                   .filter(user_id=user_id, status__in=ACTING_STATUSES).select_related("org"))
    written = 0
    for membership in memberships:
        audit_record(org=membership.org, actor=actor, event=event, outcome=outcome, target=target, data=data)
        written += 1
    return written
