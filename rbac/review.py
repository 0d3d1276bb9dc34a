"""People in the access-review export: each membership with its roles, teams and effective
permissions (from the one resolver, rbac.selectors), MFA enrolment and last sign-in."""

from itertools import islice

from django.db.models import Prefetch
from django_otp import device_classes

from accounts.models import Membership, RecoveryCodeDevice
from audit.exports import CHUNK, ReviewSource, iso
from rbac.models import Role, TeamMembership
from rbac.selectors import memberships_permissions


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
    return [
        "human", user.pk, user.display_name, user.email, membership.status, membership.source,
        membership.role, "; ".join(sorted(r.name for r in membership.custom_roles.all())),
        "; ".join(sorted(f"{tm.team.name} ({tm.role})" for tm in team_memberships)),
        " ".join(sorted(perms)), "yes" if user.pk in mfa_users else "no",
        iso(user.last_login), iso(membership.created_at), "", "", "", "",
    ]


def human_rows(org):
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
        for membership in chunk:
            yield _row(membership, perms.get(membership.pk, frozenset()), mfa_users)


HUMANS = ReviewSource(rows=human_rows, count=lambda org: Membership.objects.for_org(org).count())
