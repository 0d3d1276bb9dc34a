"""Events about a person's own account (signing in, failing to, second factors, re-authentication,
sessions ending): on the platform chain, where the account lives, and in the audit log of every org
the person acts in, whose admins and auditors must see who signs in to their org and how.

An org sees these only for its acting members: an invitation not yet accepted shows it nothing.
"""

from accounts.models import ACTING_STATUSES, Membership
from audit.actors import Actor
from audit.events import Outcome
from audit.services import Target, audit_record


def person_record(*, user, event, actor: Actor | None = None, outcome: str = Outcome.SUCCESS,
                  data: dict | None = None, target=None) -> None:
    """Record `event` about `user` (None: an unknown account, the platform chain only)."""
    actor = actor or (Actor.for_user(user) if user is not None else Actor.anonymous())
    if target is None and user is not None:
        target = Target.of(user)
    audit_record(org=None, actor=actor, event=event, outcome=outcome, target=target, data=data or {})
    if user is None or not user.pk:
        return
    memberships = (Membership.objects.unscoped()  # the person's memberships in every org
                   .filter(user_id=user.pk, status__in=ACTING_STATUSES).select_related("org"))
    for membership in memberships:
        audit_record(org=membership.org, actor=actor, event=event, outcome=outcome, target=target,
                     data=data or {})
