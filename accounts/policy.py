"""Reading security policies: one org's, and the strictest across every org a person belongs to.

Login and password rules are about a person, not an org, so where a user belongs to several orgs
they take the strictest value of each setting. Session timeouts and the MFA mandate are checked per
org, on every request to that org's resources (`org_session_denial`).
"""

import time
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.utils import timezone

from accounts.models import ACTING_STATUSES, Membership, SecurityPolicy
from core.roles import BuiltinRole

# Session keys written by accounts.login_flow (kept here, the lower layer, so both can read them).
AUTH_TIME_KEY = "iam_auth_time"  # last password or second-factor proof (re-auth gate, org timeouts)
MFA_TIME_KEY = "iam_mfa_at"  # when this session last proved a second factor
LAST_SEEN_KEY = "iam_last_seen"
SSO_ORGS_KEY = "iam_sso_orgs"  # the orgs whose IdP signed this session in


def policy_for_org(org) -> SecurityPolicy:
    """The org's policy row, or the defaults when the owner has never changed it."""
    try:
        return org.security_policy
    except SecurityPolicy.DoesNotExist:
        return SecurityPolicy(org=org)


CLASS_CHECKS = {
    "lower": (str.islower, "a lower-case letter"),
    "upper": (str.isupper, "an upper-case letter"),
    "digit": (str.isdigit, "a digit"),
    "symbol": (lambda c: not c.isalnum(), "a symbol"),
}


@dataclass(frozen=True)
class UserPolicy:
    min_length: int = 12
    classes: frozenset = field(default_factory=frozenset)
    history: int = 0
    max_age_days: int = 0
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    org_names: tuple = ()
    # Every org the person acts in requires SSO of them: a password signs them in nowhere.
    sso_only: bool = False

    @classmethod
    def from_policies(cls, policies) -> "UserPolicy":
        policies = list(policies)
        if not policies:
            return cls()
        ages = [p.password_max_age_days for p in policies if p.password_max_age_days]
        classes = set()
        for p in policies:
            classes |= {name for name in CLASS_CHECKS if getattr(p, f"password_require_{name}")}
        return cls(
            min_length=max(p.password_min_length for p in policies),
            classes=frozenset(classes),
            history=max(p.password_history for p in policies),
            max_age_days=min(ages) if ages else 0,
            lockout_threshold=min(p.lockout_threshold for p in policies),
            lockout_minutes=max(p.lockout_minutes for p in policies),
            org_names=tuple(p.org.name for p in policies if p.org_id),
        )


def user_policy(user) -> UserPolicy:
    """The strictest of the policies of every org the user may act in (defaults for the rest)."""
    if user is None or not user.pk:
        return UserPolicy()
    memberships = list(Membership.objects.unscoped()  # the person's memberships in every org
                       .filter(user=user, status__in=ACTING_STATUSES)
                       .select_related("org", "org__security_policy"))
    policy = UserPolicy.from_policies(policy_for_org(m.org) for m in memberships)
    sso_only = bool(memberships) and all(sso_demanded(policy_for_org(m.org), m.role) for m in memberships)
    return replace(policy, sso_only=sso_only) if sso_only else policy


def sso_demanded(policy: SecurityPolicy, role: str) -> bool:
    """Whether this org lets a member with `role` act only in a session its own IdP signed in."""
    return policy.sso_required and not (policy.sso_break_glass == "owners" and role == BuiltinRole.OWNER)


def password_expired(user, policy: UserPolicy | None = None) -> bool:
    policy = policy or user_policy(user)
    if not policy.max_age_days or not user.has_usable_password():
        return False
    changed = user.password_changed_at or user.created_at
    return timezone.now() - changed > timedelta(days=policy.max_age_days)


def missing_classes(password: str, classes) -> list[str]:
    return [CLASS_CHECKS[name][1] for name in sorted(classes)
            if not any(CLASS_CHECKS[name][0](c) for c in password)]



# Reasons a valid session may not use one org's resources right now, and where a page sends it.
SESSION_DENIALS = {
    "session_revoked": "accounts:reauth",
    "session_expired": "accounts:reauth",
    "session_idle": "accounts:reauth",
    "mfa_required": "accounts:reauth",
    "mfa_enrollment_required": "accounts:mfa-setup",
    "password_change_required": "accounts:password-change",
    "sso_required": "accounts:sso-required",
}


def org_session_denial(*, org, user, session, idle_seconds: float | None, has_factor,
                       not_before=None, role: str = "") -> str | None:
    """Why this session may not act in `org` under the org's policy, or None.

    Checked on every request to the org's resources (by the guard), so a policy change or the
    passing of time takes effect on the next request. `has_factor` is called only when needed.
    `not_before`: an admin ended the member's sessions' access to this org at that time.
    """
    policy = policy_for_org(org)
    now = time.time()
    proven = session.get(AUTH_TIME_KEY) or 0
    if not_before is not None and proven <= not_before.timestamp():
        return "session_revoked"
    if now - proven > policy.session_absolute_minutes * 60:
        return "session_expired"
    if idle_seconds is not None and idle_seconds > policy.session_idle_minutes * 60:
        return "session_idle"
    if sso_demanded(policy, role) and str(org.pk) not in (session.get(SSO_ORGS_KEY) or ()):
        return "sso_required"
    if policy.mfa_required and not session.get(MFA_TIME_KEY):
        return "mfa_required" if has_factor() else "mfa_enrollment_required"
    if policy.password_max_age_days and password_expired(
        user, UserPolicy(max_age_days=policy.password_max_age_days)
    ):
        return "password_change_required"
    return None
