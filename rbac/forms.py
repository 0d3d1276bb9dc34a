"""Forms of the team and role pages, and the grouped permission picker the API-key page reuses.

Forms only shape input; every rule (no escalation, team standing) is enforced by rbac.services.
"""

from django import forms

from accounts.models import Membership
from core.roles import TeamRole
from rbac.models import Role
from web.forms import PageForm, PermissionsField


def org_roles_field(org, **kwargs) -> forms.ModelMultipleChoiceField:
    """Custom roles of this org only: an id from another org is simply an invalid choice."""
    return forms.ModelMultipleChoiceField(
        queryset=Role.objects.for_org(org).order_by("name"), required=False,
        widget=forms.CheckboxSelectMultiple, **kwargs,
    )


class RoleForm(PageForm):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    permissions = PermissionsField(required=False)


class TeamCreateForm(PageForm):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False)


class TeamMemberAddForm(PageForm):
    membership = forms.ModelChoiceField(queryset=Membership.objects.none(), label="Member")
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.MEMBER, label="Team role")

    def __init__(self, *args, org, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["membership"].queryset = (
            Membership.objects.for_org(org)
            .exclude(team_memberships__team=team)
            .select_related("user")
            .order_by("user__email")
        )
        self.fields["membership"].label_from_instance = lambda m: m.user.email


class TeamMemberRoleForm(PageForm):
    role = forms.ChoiceField(choices=TeamRole.choices, label="Team role")


class TeamRolesForm(PageForm):
    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roles"] = org_roles_field(org, label="Roles granted to every team member")
