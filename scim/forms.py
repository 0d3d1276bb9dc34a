"""Forms of the provisioning pages. They shape input; scim.tokens and scim.provisioning hold the rules
(grace period bounds, no escalation through a mapping)."""

from django import forms

from core.roles import TeamRole
from rbac.models import Role, Team
from scim.models import MAPPABLE_BUILTIN_ROLES, MappingKind, ScimGroup
from scim.selectors import TOKEN_STATES
from scim.tokens import MAX_GRACE_SECONDS
from web.forms import ObjectPickerField, PageForm

DEFAULT_GRACE_SECONDS = 3600


class ScimTokenCreateForm(PageForm):
    name = forms.CharField(max_length=100, help_text="Which IdP uses it, e.g. “Okta production”.")


class ScimTokenRevokeForm(PageForm):
    grace_seconds = forms.IntegerField(
        min_value=0, max_value=MAX_GRACE_SECONDS, initial=DEFAULT_GRACE_SECONDS,
        label="Grace period (seconds)",
        help_text="How long the token keeps working while the IdP moves to a new one (at most a week).")


class GroupMappingForm(PageForm):
    """Map a SCIM group of this org to a built-in role (never owner), a custom role, or a team."""

    kind = forms.ChoiceField(choices=MappingKind.choices, label="Grants")
    # Owner is not offered: a directory group never makes anyone an owner.
    builtin_role = forms.ChoiceField(
        required=False, label="Built-in role",
        choices=[("", "—"), *((r.value, r.label) for r in MAPPABLE_BUILTIN_ROLES)])
    team_role = forms.ChoiceField(required=False, label="Role in the team",
                                  choices=[("", "—"), *TeamRole.choices])

    # The fields each kind needs; fields another kind uses are ignored.
    NEEDS = {MappingKind.BUILTIN_ROLE: ("builtin_role",), MappingKind.CUSTOM_ROLE: ("role",),
             MappingKind.TEAM: ("team", "team_role")}

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this org's groups, roles and teams: another org's id or name is simply not found.
        # Each is typed (a searching picker), so the form never lists every group, role or team.
        self.fields["group"] = ObjectPickerField(
            queryset=ScimGroup.objects.for_org(org), name_field="display_name", api="api:scim-group-list",
            org=org, options="mapping-group-options", label="SCIM group",
            help_text="Its name as the IdP sent it (type to search).")
        self.fields["role"] = ObjectPickerField(
            queryset=Role.objects.for_org(org), name_field="name", api="api:role-list", org=org,
            options="mapping-role-options", required=False, label="Custom role",
            help_text="For a custom role: its name (type to search).")
        self.fields["team"] = ObjectPickerField(
            queryset=Team.objects.for_org(org), name_field="name", api="api:team-list", org=org,
            options="mapping-team-options", required=False, label="Team",
            help_text="For a team: its name (type to search).")
        self.order_fields(["group", "kind", "builtin_role", "role", "team", "team_role"])

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        for name in self.NEEDS.get(kind, ()):
            if not data.get(name) and name not in self.errors:
                self.add_error(name, f"Choose one to grant with “{MappingKind(kind).label}”.")
        return data

    def service_arguments(self) -> dict:
        """The keyword arguments of `mapping_create` for the chosen kind."""
        data = self.cleaned_data
        targets = {name: data[name] for name in self.NEEDS[data["kind"]]}
        return {"group": data["group"], "kind": data["kind"], **targets}


class ScimTokenFilterForm(PageForm):
    """The tokens list's state filter (GET), beside its search: the admin API's `?state=`. An unknown
    value is a 400 with the field's error, never a silently empty list."""

    state = forms.ChoiceField(required=False, label="Show",
                              choices=[("", "Every token"), *TOKEN_STATES.items()])

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "filter_%s")
        super().__init__(*args, **kwargs)
