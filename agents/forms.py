"""Forms of the agent, connection and run pages. They shape input; agents.services holds the rules
(grant within the owners' permissions, known audiences and scopes, policy-bounded overlap)."""

import re
import uuid

from django import forms
from django.db.models import Q
from django.urls import reverse

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


def _uuid(text: str):
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def member_lookup(org, text: str) -> Membership | None:
    """An acting member of the org by the email a picker posts (any case), or by membership id."""
    text = (text or "").strip()
    if not text:
        return None
    pk = _uuid(text)
    match = Q(pk=pk) if pk else Q(user__email__iexact=text)
    return _acting_members(org).filter(match).first()


def agent_lookup(queryset, text: str) -> Agent | None:
    """An agent of `queryset` (already the org's) by the name or client id a picker posts, or by id."""
    text = (text or "").strip()
    if not text:
        return None
    pk = _uuid(text)
    match = Q(pk=pk) if pk else Q(client_id=text) | Q(name__iexact=text)
    found = list(queryset.filter(match).order_by("name")[:2])
    if len(found) != 1:  # none, or two agents of that name (the client id tells them apart)
        return None
    return found[0]


class MemberPickerField(forms.CharField):
    """A searching picker's text (an email) resolved to an acting member of the org: never a select
    of every member. `org` is set by the form."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 254)
        super().__init__(*args, **kwargs)
        self.org = None

    def clean(self, value):
        text = super().clean(value)
        if not text:
            return None
        member = member_lookup(self.org, text)
        if member is None:
            raise forms.ValidationError(f"No active member of this organization has the email {text}.")
        return member


def _picker(field, org, api: str) -> None:
    """Point a picker field at the admin API list it searches (console.js)."""
    field.widget.attrs["data-picker"] = reverse(api, kwargs={"org": org.slug})


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
        self.fields["owner"] = MemberPickerField(
            initial=membership.user.email if membership else "", label="Owner",
            help_text="Their email (type to search). Accountable for the agent; its grant can never "
                      "exceed what they hold.",
            widget=forms.TextInput(attrs={"list": "owner-options", "autocomplete": "off",
                                          "data-picker-field": "email", "data-picker-label": "name"}))
        self.fields["owner"].org = org
        _picker(self.fields["owner"], org, "api:member-list")


class AgentGrantForm(_GrantFields):
    """The grant and the owners: a box for each current owner (untick to remove) and a searching
    picker to add one, so the page never lists every member of the org."""

    def __init__(self, *args, org, current_owners=(), **kwargs):
        super().__init__(*args, org=org, **kwargs)
        self.fields["owners"] = forms.ModelMultipleChoiceField(
            queryset=_acting_members(org), widget=forms.CheckboxSelectMultiple, label="Owners",
            required=False, help_text="Untick an owner to remove them.")
        # Validation accepts any acting member; only the current owners are drawn as boxes.
        self.fields["owners"].widget.choices = [(m.pk, m.user.email) for m in current_owners]
        self.fields["add_owner"] = MemberPickerField(
            required=False, label="Add an owner",
            help_text="Their email (type to search).",
            widget=forms.TextInput(attrs={"list": "add-owner-options", "autocomplete": "off",
                                          "data-picker-field": "email", "data-picker-label": "name"}))
        self.fields["add_owner"].org = org
        _picker(self.fields["add_owner"], org, "api:member-list")

    def clean(self):
        data = super().clean()
        owners = list(data.get("owners") or [])
        added = data.get("add_owner")
        if added is not None and added.pk not in {m.pk for m in owners}:
            owners.append(added)
        if "owners" in data and not owners and not self.has_error("add_owner"):
            self.add_error("owners", "An agent needs at least one owner.")
        data["owners"] = owners
        return data

    @classmethod
    def for_agent(cls, agent: Agent, org):
        owners = list(agent.owners.all())
        initial = {"scopes": agent.scopes, "audiences": agent.audiences, "owners": [m.pk for m in owners]}
        return cls(initial=initial, org=org, current_owners=owners)


class AgentDelegatesForm(PageForm):
    """The agents of the org this one may name in `may_act`: a box for each current one (untick to
    remove) and a searching picker to add another, never a box for every agent of the org."""

    def __init__(self, *args, agent: Agent, current=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.others = Agent.objects.for_org(agent.org_id).exclude(pk=agent.pk)
        self.fields["may_delegate_to"] = forms.ModelMultipleChoiceField(
            queryset=self.others.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple,
            label="May delegate to",
            help_text="Only these agents may exchange a token it hands on. Untick one to remove it.")
        self.fields["may_delegate_to"].widget.choices = [(a.pk, f"{a.name} ({a.client_id})") for a in current]
        self.fields["add_delegate"] = forms.CharField(
            required=False, max_length=100, label="Add an agent",
            help_text="Its name or client ID (type to search). You must hold what its grant needs.",
            widget=forms.TextInput(attrs={"list": "delegate-options", "autocomplete": "off",
                                          "data-picker-field": "name"}))
        _picker(self.fields["add_delegate"], agent.org, "api:agent-list")

    def clean(self):
        data = super().clean()
        targets = list(data.get("may_delegate_to") or [])
        text = data.get("add_delegate", "")
        if text:
            added = agent_lookup(self.others, text)
            if added is None:
                self.add_error("add_delegate", f"No other agent of this organization is named {text}.")
            elif added.pk not in {a.pk for a in targets}:
                targets.append(added)
        data["may_delegate_to"] = targets
        return data

    @classmethod
    def for_agent(cls, agent: Agent):
        current = list(agent.may_delegate_to.all())
        return cls(initial={"may_delegate_to": [a.pk for a in current]}, agent=agent, current=current)


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
    agent = forms.CharField(
        max_length=100, help_text="Its name or client ID (type to search).",
        widget=forms.TextInput(attrs={"list": "run-agent-options", "autocomplete": "off",
                                      "data-picker-field": "name"}))
    description = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.org = org
        _picker(self.fields["agent"], org, "api:agent-list")

    def clean_agent(self) -> Agent:
        # Only this org's active agents: another org's agent, or a suspended one, is no choice.
        text = self.cleaned_data["agent"]
        agent = agent_lookup(Agent.objects.for_org(self.org).filter(status=AgentStatus.ACTIVE), text)
        if agent is None:
            raise forms.ValidationError(f"No active agent of this organization is named {text}.")
        return agent


class AgentPolicyForm(forms.ModelForm):
    """Only shape and ranges; agents.policy.agent_policy_set applies and audits the change."""

    label_suffix = ""
    # A searching picker (an email, or a membership id from the API), never a select of every member;
    # it resolves to one of this org's acting members only.
    deprovision_fallback_owner = MemberPickerField(
        required=False, label="Fallback owner for those agents", help_text="Their email (type to search).",
        widget=forms.TextInput(attrs={"list": "fallback-owner-options", "autocomplete": "off",
                                      "data-picker-field": "email", "data-picker-label": "name"}))

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
        fallback = self.fields["deprovision_fallback_owner"]
        fallback.org = self.instance.org
        _picker(fallback, self.instance.org, "api:member-list")
        current = self.instance.deprovision_fallback_owner
        self.initial["deprovision_fallback_owner"] = current.user.email if current else ""
