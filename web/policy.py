"""The security policy page and API: every app's org settings, shown and changed as one.

Each app owns its own settings row and the service that changes it (accounts.SecurityPolicy,
agents.AgentPolicy; SSO and trust add theirs) and describes it as a `PolicySection`. The composition
root (iam_project) hands the list of sections to these views, so this module imports no app's
settings and a new app's section needs no change here. A change touching several sections is one
transaction: all of it applies, or none of it.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.views import View
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from audit.services import records_denials
from core.errors import ServiceError
from core.permissions import Perm
from web.api import OrgScopedAPIView
from web.pages import OrgPageMixin, form_apply_service_error


@dataclass(frozen=True)
class PolicySection:
    """One app's settings row, as the security page and the `security-policy` API show it."""

    read: Callable  # org -> the org's row (unsaved defaults when it has none yet)
    serializer: type  # a ModelSerializer over the row; its fields are the section's API fields
    form: type  # a ModelForm over the row, for the page
    groups: tuple  # ((heading, (field name, ...)), ...) on the page
    update: Callable  # (*, access, **changes) -> row: the app's policy wrapper, audited

    @property
    def fields(self) -> list[str]:
        return [name for name in self.serializer.Meta.fields if name != "updated_at"]


@records_denials
@transaction.atomic
def sections_update(*, access, changes: list) -> None:
    """Apply each section's changes in one transaction: [(section, {field: value}), ...]."""
    for section, values in changes:
        if values:
            section.update(access=access, **values)


class SecurityPolicyView(OrgScopedAPIView):
    """The org's policy. Changes apply at each member's next request, login or token issuance."""

    required = {"get": Perm.POLICY_READ, "patch": Perm.POLICY_WRITE}
    sections: tuple[PolicySection, ...] = ()

    def body(self, org=None) -> dict:
        out, updated = {}, []
        for section in self.sections:
            row = section.read(org or self.org)
            data = section.serializer(row).data
            updated.append(row.updated_at)
            out.update({name: data[name] for name in section.fields})
        out["updated_at"] = serializers.DateTimeField().to_representation(max(updated)) if updated else None
        return out

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, org):
        return Response(self.body())

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request, org):
        """Any of the policy's fields; the others stay as they are."""
        checked, errors = [], {}
        for section in self.sections:
            given = {k: v for k, v in request.data.items() if k in section.fields}
            serializer = section.serializer(section.read(self.org), data=given, partial=True)
            if serializer.is_valid():
                checked.append((section, dict(serializer.validated_data)))
            else:
                errors.update(serializer.errors)
        if errors:
            raise serializers.ValidationError(errors)
        sections_update(access=self.access, changes=checked)
        # Read back through a fresh org row: this request's one caches the rows as they were.
        return Response(self.body(type(self.org).objects.get(pk=self.org.pk)))


class SecurityPolicyPageView(OrgPageMixin, View):
    required = {"get": Perm.POLICY_READ, "post": Perm.POLICY_WRITE}
    template = "pages/security_policy.html"
    sections: tuple[PolicySection, ...] = ()

    def get(self, request, org):
        return self.page([section.form(instance=section.read(self.org)) for section in self.sections])

    def post(self, request, org):
        forms = [section.form(request.POST, instance=section.read(self.org)) for section in self.sections]
        if not all(form.is_valid() for form in forms):
            return self.page(forms, status=400)
        changes = [(section, {name: form.cleaned_data[name] for name in form.changed_data})
                   for section, form in zip(self.sections, forms, strict=True)]
        try:
            sections_update(access=self.access, changes=changes)
        except ServiceError as exc:
            form = next((f for f in forms if set(exc.fields or {}) & set(f.fields)), forms[0])
            form_apply_service_error(form, exc)
            return self.page(forms, status=exc.status)
        changed = any(values for _, values in changes)
        messages.success(request, "Security policy saved." if changed else "Nothing changed.")
        return redirect("policy:security-policy", org=self.org.slug)

    def page(self, forms, status=200):
        groups = [(heading, [form[name] for name in names])
                  for section, form in zip(self.sections, forms,
                                           strict=True) for heading, names in section.groups]
        errors = [error for form in forms for error in form.non_field_errors()]
        return self.render_page(self.template, status=status, groups=groups, errors=errors)
