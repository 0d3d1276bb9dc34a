"""How the audit log names teams and custom roles (audit.naming)."""

from django.urls import reverse

from audit.naming import Namer, uuid_ids
from rbac.models import Role, Team


def team_names(org, ids):
    rows = Team.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"team {name}", reverse("rbac:team-detail", kwargs={"org": org.slug, "pk": pk}))
            for pk, name in rows}


def role_names(org, ids):
    rows = Role.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"role {name}", reverse("rbac:role-edit", kwargs={"org": org.slug, "pk": pk}))
            for pk, name in rows}


NAMERS = (Namer("team", team_names), Namer("role", role_names))
