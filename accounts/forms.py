"""Forms of the login, member and API-key pages. Rules live in the services, not here."""

from django import forms
from django.db.models import Q

from accounts.models import MembershipSource, MembershipStatus, SecurityPolicy
from accounts.people_selectors import member_filter
from accounts.services import POLICY_FIELDS
from core.roles import BuiltinRole
from rbac.forms import org_roles_field
from web.forms import PageForm, PermissionsField

LOGIN_ERROR = "Email or password is incorrect."


class LoginForm(PageForm):
    """Fields are `email` and `password` (the public contract), not Django's `username`.

    Only the shape is checked here; the password itself is checked by accounts.login_flow under
    the lockout and throttle rules. Password fields have no max_length: an over-long one must reach
    the flow, which refuses it before any hashing and audits it.
    """

    email = forms.CharField(widget=forms.EmailInput(attrs={"autocomplete": "username"}))
    # Not required: an email alone asks for the person's identity provider (home-realm discovery).
    password = forms.CharField(
        strip=False, required=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class ReauthForm(PageForm):
    password = forms.CharField(
        strip=False, required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    code = forms.CharField(
        required=False, max_length=64, label="Or a code from your authenticator app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class PasswordChangeForm(PageForm):
    current_password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    new_password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )


class MemberAddForm(PageForm):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=BuiltinRole.choices, initial=BuiltinRole.MEMBER)

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["custom_roles"] = org_roles_field(org, label="Custom roles")


class MemberFilterForm(PageForm):
    """The members list's filters (GET), beside its search. An unknown value is a 400 with the field's
    error, never a silently empty list."""

    role = forms.ChoiceField(required=False, label="Filter by role",
                             choices=[("", "Any role"), *BuiltinRole.choices])
    status = forms.ChoiceField(required=False, label="Filter by status",
                               choices=[("", "Any status"), *MembershipStatus.choices])
    source = forms.ChoiceField(required=False, label="Filter by how they joined",
                               choices=[("", "Any way"), *MembershipSource.choices])
    mfa = forms.ChoiceField(required=False, label="Filter by second factor",
                            choices=[("", "Either"), ("none", "No second factor"),
                                     ("enrolled", "Has a second factor")])

    def __init__(self, *args, **kwargs):
        # Its own ids: the invitation form on the same page has a `role` field too.
        kwargs.setdefault("auto_id", "filter_%s")
        super().__init__(*args, **kwargs)

    def filters(self) -> Q:
        """The chosen filters as one condition (empty, and so false, when none is chosen)."""
        return member_filter(**self.cleaned_data)


class MemberEditForm(PageForm):
    role = forms.ChoiceField(choices=BuiltinRole.choices)
    status = forms.ChoiceField()

    def __init__(self, *args, org, membership, **kwargs):
        super().__init__(*args, **kwargs)
        # Owners switch members between active and suspended; deprovisioned comes from the
        # directory, so it is offered only as the current value. An invitation waits for the
        # person's answer: nothing else is offered until then.
        allowed = {MembershipStatus.ACTIVE, MembershipStatus.SUSPENDED, membership.status}
        if membership.status == MembershipStatus.INVITED:
            allowed = {membership.status}
        self.fields["status"].choices = [c for c in MembershipStatus.choices if c[0] in allowed]
        self.fields["custom_roles"] = org_roles_field(org, label="Custom roles")


class ApiKeyCreateForm(PageForm):
    name = forms.CharField(max_length=100)
    permissions = PermissionsField()
    expires_at = forms.DateTimeField(
        required=False, label="Expires (UTC, optional)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class SecurityPolicyForm(forms.ModelForm):
    """Only shape and ranges; accounts.services.security_policy_set applies and audits the change."""

    label_suffix = ""

    class Meta:
        model = SecurityPolicy
        fields = list(POLICY_FIELDS)
        labels = {
            "session_absolute_minutes": "Session lifetime (minutes)",
            "session_idle_minutes": "Idle timeout (minutes)",
            "password_min_length": "Minimum password length",
            "password_require_lower": "Require a lower-case letter",
            "password_require_upper": "Require an upper-case letter",
            "password_require_digit": "Require a digit",
            "password_require_symbol": "Require a symbol",
            "password_history": "Remember previous passwords (no reuse)",
            "password_max_age_days": "Maximum password age in days (0: never)",
            "mfa_required": "Require two-step verification for every member",
            "sso_required": "Members sign in only through single sign-on",
            "sso_break_glass": "Break-glass when the identity provider is down",
            "lockout_threshold": "Failed sign-ins before lockout",
            "lockout_minutes": "Lockout duration (minutes)",
        }
