"""Forms of the team and role pages, and the grouped permission picker the API-key page reuses.

Forms only shape input; every rule (no escalation, team standing) is enforced by rbac.services.
"""

from django import forms

from accounts.models import Membership, normalize_email
from core.roles import TeamRole
from rbac.models import Role, TeamMembership
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
    """A member by address, typed into a picker that searches the members API as one types (no list of
    every member is rendered). The address is resolved within the org only: another org's member, or
    an address nobody in the org has, is the same clear field error."""

    member = forms.CharField(max_length=254, label="Member", help_text="Type an email address or a name.")
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.MEMBER, label="Team role")

    def __init__(self, *args, org, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.org, self.team = org, team

    def clean_member(self) -> Membership:
        email = normalize_email(self.cleaned_data["member"])
        membership = (Membership.objects.for_org(self.org).select_related("user")
                      .filter(user__email=email).first())
        if membership is None:
            raise forms.ValidationError(f"No member of {self.org.name} has the address “{email}”.")
        if TeamMembership.objects.filter(team=self.team, membership=membership).exists():
            raise forms.ValidationError(f"{email} is already in {self.team.name}.")
        return membership


class TeamMemberRoleForm(PageForm):
    role = forms.ChoiceField(choices=TeamRole.choices, label="Team role")


class TeamRolesForm(PageForm):
    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roles"] = org_roles_field(org, label="Roles granted to every team member")
