from iam_project.errors import NotFound
from rbac.models import Role


def roles_in_org(org, ids) -> list[Role]:
    """Roles named in a request body; an id from another org is a 404, like one in the path."""
    wanted = set(ids)
    roles = list(Role.objects.for_org(org).filter(pk__in=wanted))
    if len(roles) != len(wanted):
        raise NotFound("Role not found.")
    return roles
