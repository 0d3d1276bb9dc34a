"""People and org API keys in the access-review export.

People: each membership with its roles, teams and effective permissions (from the one resolver,
rbac.selectors), MFA enrolment and last sign-in; adapters above rbac may fill in columns of their
own knowledge through `human_source(overlays=...)` (scim.review gives the names an IdP sent).

API keys: what each was declared (`scopes`) and what it can do now (`effective_permissions`): the
declared permissions within its creator's current ones, and nothing once it is revoked or expired
or its creator cannot act in the org (rbac.authentication applies the same rule to every request).
"""

from collections.abc import Callable, Iterable
from itertools import islice

from django.db.models import Prefetch
from django.utils import timezone
from django_otp import device_classes

from accounts.models import ACTING_STATUSES, ApiKey, Membership, MembershipStatus, RecoveryCodeDevice
from audit.exports import CHUNK, ReviewSource, column, iso
from rbac.models import Role, TeamMembership
from rbac.selectors import memberships_permissions

# (org, a chunk of memberships) -> {membership pk: {column name: value}}, one query a chunk
HumanOverlay = Callable[[object, list], dict]


def _mfa_enrolled_users(org) -> set:
    """Members with a confirmed authenticator app or passkey (recovery codes alone are a backup)."""
    users = set()
    for model in device_classes():
        if model is not RecoveryCodeDevice:
            users |= set(model.objects.filter(confirmed=True, user__memberships__org=org)
                         .values_list("user_id", flat=True))
    return users


def _row(membership: Membership, perms, mfa_users: set) -> list:
    user = membership.user
    team_memberships = list(membership.team_memberships.all())
    # Until the person accepts, the org knows the address it typed and nothing of the account.
    pending = membership.status == MembershipStatus.INVITED
    return [
        "human", "" if pending else user.pk, "" if pending else user.display_name, user.email,
        membership.status, membership.source,
        membership.role, "; ".join(sorted(r.name for r in membership.custom_roles.all())),
        "; ".join(sorted(f"{tm.team.name} ({tm.role})" for tm in team_memberships)),
        " ".join(sorted(perms)), "" if pending else ("yes" if user.pk in mfa_users else "no"),
        "" if pending else iso(user.last_login), iso(membership.created_at), "", "", "", "",
    ]


def human_rows(org, overlays: Iterable[HumanOverlay] = ()):
    """One row per membership, oldest first, read in chunks with their roles and teams prefetched
    and their permissions resolved per chunk: a constant number of queries per chunk."""
    mfa_users = _mfa_enrolled_users(org)
    memberships = (
        Membership.objects.for_org(org).select_related("user")
        .prefetch_related(
            Prefetch("custom_roles", queryset=Role.objects.for_org(org)),
            Prefetch("team_memberships", queryset=TeamMembership.objects.filter(team__org=org)
                     .select_related("team")),
        )
        .order_by("created_at", "pk").iterator(chunk_size=CHUNK)
    )
    while chunk := list(islice(memberships, CHUNK)):
        acting = {m.pk: m.role for m in chunk if m.can_act}
        perms = memberships_permissions(org_id=org.pk, roles=acting)
        filled = [overlay(org, chunk) for overlay in overlays]
        for membership in chunk:
            row = _row(membership, perms.get(membership.pk, frozenset()), mfa_users)
            for columns in filled:
                for name, value in columns.get(membership.pk, {}).items():
                    row[column(name)] = value
            yield row


def human_source(*, overlays: Iterable[HumanOverlay] = ()) -> ReviewSource:
    overlays = tuple(overlays)
    return ReviewSource(rows=lambda org: human_rows(org, overlays),
                        count=lambda org: Membership.objects.for_org(org).count())


HUMANS = human_source()


def makers_permissions(org, users) -> dict:
    """{user id: effective permissions} of those of `users` who can act in `org` now (an active
    account with an acting membership): what a credential they made may still hold. Two queries."""
    acting = {u.pk for u in users if u is not None and u.is_active}
    memberships = list(Membership.objects.for_org(org).filter(user_id__in=acting, status__in=ACTING_STATUSES)
                       .values_list("pk", "user_id", "role"))
    perms = memberships_permissions(org_id=org.pk, roles={pk: role for pk, _, role in memberships})
    return {user_id: perms[pk] for pk, user_id, _ in memberships}


def credential_status(credential, now) -> str:
    return credential.refusal(now) or "active"


def _key_row(key: ApiKey, held, now) -> list:
    status = credential_status(key, now)
    effective = key.perms & held if status == "active" and held is not None else frozenset()
    maker = key.created_by
    return [
        "api_key", key.pk, key.name, "", status, "manual", "", "", "", " ".join(sorted(effective)), "",
        iso(key.last_used_at), iso(key.created_at), maker.email if maker else "",
        " ".join(sorted(key.permissions)), "", iso(key.created_at),
    ]


def credential_rows(org, credentials, row):
    """Rows of an org's credentials (a queryset of a credential-kernel model) in chunks, oldest
    first: per chunk the credentials with their creators, the creators' acting memberships and
    those memberships' permissions, three queries however many. `row(credential, what its maker
    holds now or None, now)` makes each."""
    now = timezone.now()
    rows = credentials.select_related("created_by").order_by("created_at", "pk").iterator(chunk_size=CHUNK)
    while chunk := list(islice(rows, CHUNK)):
        held = makers_permissions(org, {credential.created_by for credential in chunk})
        for credential in chunk:
            yield row(credential, held.get(credential.created_by_id), now)


def api_key_rows(org):
    return credential_rows(org, ApiKey.objects.for_org(org), _key_row)


API_KEYS = ReviewSource(rows=api_key_rows, count=lambda org: ApiKey.objects.for_org(org).count())
