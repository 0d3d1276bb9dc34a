"""Forms of the login, member and API-key pages. Rules live in the services, not here."""

from django import forms
from django.contrib.auth import authenticate

from accounts.models import MembershipStatus
from rbac.forms import PageForm, PermissionsField, org_roles_field
from rbac.roles import BuiltinRole

LOGIN_ERROR = "Email or password is incorrect."
# Argon2 would happily hash megabytes; refusing long bodies first keeps login cheap to serve.
PASSWORD_MAX_LENGTH = 1024


class LoginForm(PageForm):
    """Fields are `email` and `password` (the public contract), not Django's `username`."""

    email = forms.CharField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, request, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.user = None
        self.failure_reason = ""

    def clean(self):
        email = self.cleaned_data.get("email")
        password = self.cleaned_data.get("password")
        if email is None or password is None:
            self.failure_reason = "missing_fields"
        elif len(password) > PASSWORD_MAX_LENGTH:
            self.failure_reason = "password_too_long"  # refused before any hashing
        else:
            self.user = authenticate(self.request, email=email, password=password)
            if self.user is None:
                self.failure_reason = "bad_credentials"
        if self.user is None:
            # One message for every failure, so the page never says which part was wrong.
            self.errors.clear()
            raise forms.ValidationError(LOGIN_ERROR, code="invalid_login")
        return self.cleaned_data


class MemberAddForm(PageForm):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=BuiltinRole.choices, initial=BuiltinRole.MEMBER)

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["custom_roles"] = org_roles_field(org, label="Custom roles")


class MemberEditForm(PageForm):
    role = forms.ChoiceField(choices=BuiltinRole.choices)
    status = forms.ChoiceField()

    def __init__(self, *args, org, membership, **kwargs):
        super().__init__(*args, **kwargs)
        # Owners switch members between active and suspended; invited/deprovisioned come from
        # the login and provisioning flows, so they are offered only as the current value.
        allowed = {MembershipStatus.ACTIVE, MembershipStatus.SUSPENDED, membership.status}
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
