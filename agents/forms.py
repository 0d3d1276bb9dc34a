"""Forms of the agent, connection and run pages. They shape input; agents.services holds the rules
(grant within the owners' permissions, known audiences and scopes, policy-bounded overlap)."""

import re

from django import forms

from accounts.models import ACTING_STATUSES, Membership
from agents.models import Agent, AgentPolicy, AgentStatus, Connection
from agents.policy import AGENT_POLICY_FIELDS
from web.forms import PageForm

DEFAULT_OVERLAP_SECONDS = 3600
# The longest rotation overlap any org's policy may allow (AgentPolicy.secret_overlap_max_seconds);
# a longer one is refused here, before it can overflow a date, and the org's own limit is the service's.
OVERLAP_LIMIT_SECONDS = 7 * 24 * 3600


def _acting_members(org):
    return (Membership.objects.for_org(org).filter(status__in=ACTING_STATUSES)
            .select_related("user").order_by("user__email"))


def _grant_choices(org) -> tuple[list, list]:
    """Audiences, and scopes grouped under the connection that accepts them (Django renders the
    groups as nested lists, so two connections may offer the same scope name without clashing ids)."""
    connections = list(Connection.objects.for_org(org).order_by("name"))
    audiences = [(c.audience, f"{c.name} ({c.audience})") for c in connections]
    scopes = [(c.name, [(s, s) for s in c.scopes]) for c in connections if c.scopes]
    return audiences, scopes


class _GrantFields(PageForm):
    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        audiences, scopes = _grant_choices(org)
        self.fields["audiences"] = forms.MultipleChoiceField(
            choices=audiences, widget=forms.CheckboxSelectMultiple, label="Audiences",
            help_text="The downstream services this agent may get tokens for.")
        self.fields["scopes"] = forms.MultipleChoiceField(
            choices=scopes, required=False, widget=forms.CheckboxSelectMultiple, label="Scopes",
            help_text="Only scopes that you and every owner may hand out are accepted.")


class AgentCreateForm(_GrantFields):
    name = forms.CharField(max_length=100)

    def __init__(self, *args, org, membership=None, **kwargs):
        super().__init__(*args, org=org, **kwargs)
        self.order_fields(["name", "audiences", "scopes"])
        self.fields["owner"] = forms.ModelChoiceField(
            queryset=_acting_members(org), initial=membership, label="Owner",
            help_text="Accountable for the agent; its grant can never exceed what they hold.")
        self.fields["owner"].label_from_instance = lambda m: m.user.email


class AgentGrantForm(_GrantFields):
    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, org=org, **kwargs)
        self.fields["owners"] = forms.ModelMultipleChoiceField(
            queryset=_acting_members(org), widget=forms.CheckboxSelectMultiple, label="Owners")
        self.fields["owners"].label_from_instance = lambda m: m.user.email

    @classmethod
    def for_agent(cls, agent: Agent, org):
        initial = {"scopes": agent.scopes, "audiences": agent.audiences,
                   "owners": list(agent.owners.all())}
        return cls(initial=initial, org=org)


class AgentDelegatesForm(PageForm):
    """The agents of the org this one may name in `may_act`; a box for each other agent."""

    def __init__(self, *args, agent: Agent, **kwargs):
        super().__init__(*args, **kwargs)
        others = Agent.objects.for_org(agent.org_id).exclude(pk=agent.pk).order_by("name")
        self.fields["may_delegate_to"] = forms.ModelMultipleChoiceField(
            queryset=others, required=False, widget=forms.CheckboxSelectMultiple, label="May delegate to",
            help_text="Only these agents may exchange a token it hands on. You must hold what each "
                      "newly chosen agent's grant needs.")
        self.fields["may_delegate_to"].label_from_instance = lambda a: f"{a.name} ({a.client_id})"

    @classmethod
    def for_agent(cls, agent: Agent):
        return cls(initial={"may_delegate_to": list(agent.may_delegate_to.all())}, agent=agent)


class SecretRotateForm(PageForm):
    overlap_seconds = forms.IntegerField(
        min_value=0, max_value=OVERLAP_LIMIT_SECONDS, initial=DEFAULT_OVERLAP_SECONDS,
        error_messages={"max_value": "Between 0 and %(limit_value)s seconds."},
        label="Overlap window (seconds)",
        help_text="How long the current secret keeps working alongside the new one (0 ends it now).")
    end_now = forms.BooleanField(
        required=False, label="With no overlap, end the current secret at once",
        help_text="Anything still using it fails on its next request. Needed when the window is 0.")

    def clean(self):
        data = super().clean()
        # No overlap cuts off whatever still uses the current secret: only on purpose, never by a
        # stray 0 in the field.
        if data.get("overlap_seconds") == 0 and not data.get("end_now"):
            self.add_error("end_now", "Tick this to end the current secret now, or give an overlap window.")
        return data


def _scope_list(text: str) -> list[str]:
    return sorted({s for s in re.split(r"[\s,]+", text) if s})


SCOPES_HELP = "Separated by spaces or commas, e.g. tickets:read tickets:write"


class ConnectionCreateForm(PageForm):
    name = forms.CharField(max_length=100)
    audience = forms.URLField(max_length=500, label="Audience URL", assume_scheme="https",
                              help_text="The absolute URI agents name as `resource` to get tokens for it.")
    scopes = forms.CharField(max_length=2000, required=False, help_text=SCOPES_HELP)

    def clean_scopes(self) -> list[str]:
        return _scope_list(self.cleaned_data["scopes"])


class ConnectionUpdateForm(PageForm):
    """Name and scopes; the audience is the connection's identity (register another for a new one)."""

    name = forms.CharField(max_length=100)
    scopes = forms.CharField(max_length=2000, required=False, help_text=SCOPES_HELP)

    @classmethod
    def for_connection(cls, connection: Connection):
        return cls(initial={"name": connection.name, "scopes": " ".join(connection.scopes)})

    def clean_scopes(self) -> list[str]:
        return _scope_list(self.cleaned_data["scopes"])


class RunStartForm(PageForm):
    agent = forms.ModelChoiceField(queryset=Agent.objects.none())
    description = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this org's active agents: another org's id, or a suspended agent, is an invalid choice.
        self.fields["agent"].queryset = (
            Agent.objects.for_org(org).filter(status=AgentStatus.ACTIVE).order_by("name"))


class AgentPolicyForm(forms.ModelForm):
    """Only shape and ranges; agents.policy.agent_policy_set applies and audits the change."""

    label_suffix = ""
    # Declared, so that its choices come from the org in __init__ and never from the default manager.
    deprovision_fallback_owner = forms.ModelChoiceField(queryset=Membership.objects.none(), required=False,
                                                        label="Fallback owner for those agents")

    class Meta:
        model = AgentPolicy
        fields = list(AGENT_POLICY_FIELDS)
        labels = {
            "agent_token_ttl_seconds": "Longest agent token lifetime (seconds)",
            "secret_overlap_max_seconds": "Longest secret rotation overlap (seconds)",
            "secret_max_age_days": "Longest a client secret works (days, 0 for no limit)",
            "token_alg": "Token signing algorithm",
            "deprovision_agents": "When a deprovisioned member leaves agents without an owner",
            "max_delegation_depth": "Longest delegation chain (hand-offs from the person)",
            "delegation_max_lifetime_seconds": "Longest a person may let an agent act for them (seconds)",
            "delegation_refresh_tokens": "Give agents acting for a person a refresh token",
            "delegations_end_with_session": "End a person's delegations when their last session ends",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this org's acting members can take over agents.
        self.fields["deprovision_fallback_owner"].queryset = (
            Membership.objects.for_org(self.instance.org_id).filter(status__in=ACTING_STATUSES)
            .select_related("user").order_by("user__email"))
        self.fields["deprovision_fallback_owner"].label_from_instance = lambda m: m.user.email
