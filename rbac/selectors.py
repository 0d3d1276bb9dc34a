import json
import uuid

from django.db import connection
from django.db.models import OuterRef, Subquery

from accounts.models import ACTING_STATUSES, Membership
from core.errors import NotFound
from core.permissions import Perm, perms_from_strings
from core.roles import BUILTIN_ROLES, BuiltinRole
from rbac.models import Role


def roles_in_org(org, ids) -> list[Role]:
    """Roles named in a request body; an id from another org is a 404, like one in the path."""
    wanted = set(ids)
    roles = list(Role.objects.for_org(org).filter(pk__in=wanted))
    if len(roles) != len(wanted):
        raise NotFound("Role not found.")
    return roles


# Every custom role a membership holds, directly or through a team, as (membership_id, permissions)
# rows. Each role, and each team, must belong to the membership's own org: a row pointing at another
# org's role grants nothing, whoever wrote it. This is the only definition of role-derived grants;
# the guard, the access-review export and the token grant (agents.selectors, which joins it into its
# one statement) all read it. Plain SQL over the tables the models define, portable to SQLite.
ROLE_GRANTS_SQL = """
        SELECT ra.membership_id AS membership_id, rr.permissions AS permissions
          FROM rbac_roleassignment ra
          JOIN accounts_membership gm ON gm.id = ra.membership_id
          JOIN rbac_role rr ON rr.id = ra.role_id AND rr.org_id = gm.org_id
        UNION ALL
        SELECT tm.membership_id, rr.permissions
          FROM rbac_teammembership tm
          JOIN accounts_membership gm ON gm.id = tm.membership_id
          JOIN rbac_team t ON t.id = tm.team_id AND t.org_id = gm.org_id
          JOIN rbac_team_roles tr ON tr.team_id = t.id
          JOIN rbac_role rr ON rr.id = tr.role_id AND rr.org_id = gm.org_id
"""


def permissions_of(role: str, granted_rows) -> frozenset[Perm]:
    """Effective permissions: the built-in role's, then each granted role's (JSON lists or the
    text the database returns), keeping only strings still in the catalogue."""
    perms = set(BUILTIN_ROLES.get(role, ()))
    for permissions in granted_rows:
        perms |= perms_from_strings(json.loads(permissions) if isinstance(permissions, str | bytes)
                                    else permissions or [])
    return frozenset(perms)


def memberships_permissions(*, org_id, roles: dict) -> dict:
    """Effective permissions of memberships of one org ({membership id: built-in role} in, {id:
    frozenset} out): the built-in role, custom roles held directly, custom roles of their teams.

    One query however many memberships, roles and teams; roles of another org never count.
    """
    if not roles:
        return {}
    to_db = Membership._meta.pk.get_db_prep_value
    ids = [to_db(pk, connection) for pk in roles]
    placeholders = ", ".join(["%s"] * len(ids))
    sql = (f"SELECT g.membership_id, g.permissions FROM ({ROLE_GRANTS_SQL}) g "  # noqa: S608
           f"JOIN accounts_membership m ON m.id = g.membership_id "
           f"WHERE m.org_id = %s AND g.membership_id IN ({placeholders})")
    granted: dict = {uuid.UUID(str(pk)): [] for pk in roles}
    with connection.cursor() as cursor:
        cursor.execute(sql, [to_db(org_id, connection), *ids])
        for membership_id, permissions in cursor.fetchall():  # SQLite returns UUIDs as hex text
            granted[uuid.UUID(str(membership_id))].append(permissions)
    return {pk: permissions_of(roles[pk], granted[uuid.UUID(str(pk))]) for pk in roles}


def acting_member_permissions(*, org_id, user_id) -> frozenset[Perm] | None:
    """Effective permissions of a person in one org, or None when they cannot act there (not a
    member, suspended, deprovisioned). One query: the membership with its role-derived grants."""
    statuses = ", ".join(["%s"] * len(ACTING_STATUSES))
    sql = (f"SELECT m.role, g.permissions FROM accounts_membership m "  # noqa: S608 (constants only)
           f"LEFT JOIN ({ROLE_GRANTS_SQL}) g ON g.membership_id = m.id "
           f"WHERE m.org_id = %s AND m.user_id = %s AND m.status IN ({statuses})")
    to_db = Membership._meta.pk.get_db_prep_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [to_db(org_id, connection), to_db(user_id, connection),
                             *(str(s) for s in ACTING_STATUSES)])
        rows = cursor.fetchall()
    if not rows:
        return None
    return permissions_of(rows[0][0], [permissions for _, permissions in rows if permissions is not None])


def with_creator_role(credentials):
    """Credentials (a credential-kernel queryset) annotated with `creator_role`: their creator's
    built-in role in the credential's own org while the creator can act there, else None. Read in
    the credential's own lookup, so an owner's credential costs no query of its own."""
    standing = (Membership.objects.unscoped()  # the credential's own org, matched below
                .filter(org_id=OuterRef("org_id"), user_id=OuterRef("created_by_id"),
                        status__in=ACTING_STATUSES).values("role")[:1])
    return credentials.annotate(creator_role=Subquery(standing))


def creator_permissions(credential) -> frozenset[Perm] | None:
    """What the creator of a credential read through `with_creator_role` holds in its org now, or
    None when nobody who can act there stands behind it. No query for an owner's (every
    permission, by the built-in role alone); one otherwise (custom and team roles)."""
    creator = credential.created_by
    if creator is None or not creator.is_active or credential.creator_role is None:
        return None
    if credential.creator_role == BuiltinRole.OWNER:
        return frozenset(BUILTIN_ROLES[BuiltinRole.OWNER])
    return acting_member_permissions(org_id=credential.org_id, user_id=creator.pk)
