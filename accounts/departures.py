"""What a person leaving an org takes with them: every credential they made or hold there.

An API key, an agent's secret or a SCIM token never outlives the person behind it. Each app that
keeps such credentials registers, in its AppConfig.ready(), what it does when a member leaves (an
admin removes them, or the org's directory deprovisions them); `member_departed` runs every
handler, in registration order, inside the caller's transaction, and returns what they did.

A registry rather than direct calls because the credentials live in apps above this one (agents,
scim), which accounts must not import: the layers stay one-way and no leaving path can forget one.
"""

from collections.abc import Callable

DepartureHandler = Callable[..., dict[str, int]]

_HANDLERS: list[DepartureHandler] = []


def on_departure(handler: DepartureHandler) -> DepartureHandler:
    """Register `handler(*, membership, actor) -> {consequence: count}` (idempotent)."""
    if handler not in _HANDLERS:
        _HANDLERS.append(handler)
    return handler


def member_departed(*, membership, actor) -> dict[str, int]:
    """Run every handler for a member leaving `membership.org`; each audits its own changes."""
    consequences: dict[str, int] = {}
    for handler in _HANDLERS:
        consequences.update(handler(membership=membership, actor=actor))
    return consequences


# A member who stops acting without leaving (an admin suspends them, the directory deprovisions
# them): the apps whose credentials act for people end what acts for this one.
StandingHandler = Callable[..., dict[str, int]]

_STANDING_HANDLERS: list[StandingHandler] = []


def on_standing_lost(handler: StandingHandler) -> StandingHandler:
    """Register `handler(*, membership, actor, reason) -> {consequence: count}` (idempotent)."""
    if handler not in _STANDING_HANDLERS:
        _STANDING_HANDLERS.append(handler)
    return handler


def member_standing_lost(*, membership, actor, reason: str) -> dict[str, int]:
    """Run every handler for a member who can no longer act in `membership.org`."""
    consequences: dict[str, int] = {}
    for handler in _STANDING_HANDLERS:
        consequences.update(handler(membership=membership, actor=actor, reason=reason))
    return consequences


# A person's account was recovered (a password reset link): whoever held the old password may have
# handed authority to agents, so what acts for the person ends everywhere.
RecoveryHandler = Callable[..., dict[str, int]]

_RECOVERY_HANDLERS: list[RecoveryHandler] = []


def on_account_recovered(handler: RecoveryHandler) -> RecoveryHandler:
    """Register `handler(*, user, actor) -> {consequence: count}` (idempotent)."""
    if handler not in _RECOVERY_HANDLERS:
        _RECOVERY_HANDLERS.append(handler)
    return handler


def account_recovered(*, user, actor) -> dict[str, int]:
    consequences: dict[str, int] = {}
    for handler in _RECOVERY_HANDLERS:
        consequences.update(handler(user=user, actor=actor))
    return consequences


# Whether an org's directory (SCIM) is the source of truth for who its members are: the SCIM app
# adds its check in ready(). Just-in-time SSO provisioning then never adds a member the directory
# did not provision (or deprovisioned), so signing in cannot undo a deprovisioning.
DIRECTORY_IN_CHARGE: list[Callable] = []


def directory_in_charge(org) -> bool:
    return any(check(org) for check in DIRECTORY_IN_CHARGE)
