"""Pages: login, logout, home and the org switcher; org members and org API keys."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_GET

from accounts.forms import ApiKeyCreateForm, MemberAddForm, MemberEditForm
from accounts.models import ApiKey, Membership
from accounts.selectors import member_search, orgs_for_user
from accounts.views.login import landing
from accounts.views.shown_once import no_store, redirect_to_shown, secret_hold, secret_take
from core.errors import ServiceError
from core.permissions import Perm
from rbac import policies
from rbac.models import Role
from web.api import MAX_QUERY
from web.forms import permission_groups
from web.pages import OrgPageMixin, form_apply_service_error

# --- Login, logout, home ----------------------------------------------------------------------


@login_required
def home(request):
    if not orgs_for_user(request.user):
        return render(request, "accounts/no_org.html", {"user_orgs": []})
    return landing(request)


@login_required
@require_GET
def org_switch(request):
    """The switcher's target. Only the caller's own orgs are offered, and only those are honoured."""
    slug = request.GET.get("org", "")
    if slug not in {o.slug for o in orgs_for_user(request.user)}:
        raise Http404("No such organization.")
    return redirect("accounts:members", org=slug)


# --- Members ----------------------------------------------------------------------------------


class MemberListView(OrgPageMixin, View):
    required = {"get": Perm.MEMBER_READ, "post": Perm.MEMBER_WRITE}
    template = "accounts/members.html"

    def get(self, request, org):
        return self.page(MemberAddForm(org=self.org))

    def post(self, request, org):
        form = MemberAddForm(request.POST, org=self.org)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            policies.member_add(access=self.access, email=form.cleaned_data["email"],
                                role=form.cleaned_data["role"],
                                custom_roles=list(form.cleaned_data["custom_roles"]))
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Invited {form.cleaned_data['email']}. They join once they accept.")
        return redirect("accounts:members", org=self.org.slug)

    def page(self, form, status=200):
        members = (
            Membership.objects.for_org(self.org)
            .select_related("user")
            .prefetch_related("custom_roles", "team_memberships__team")
            .order_by("created_at")
        )
        # NUL cannot be in a stored email or name (PostgreSQL refuses it in a query): drop it.
        q = self.request.GET.get("q", "").replace("\x00", "").strip()[:MAX_QUERY]
        if q:  # by email or name, as the admin API's ?q= does
            members = members.filter(member_search(q))
        return self.render_page(self.template, status=status, members=members, form=form, q=q)


class MemberEditView(OrgPageMixin, View):
    required = {"get": Perm.MEMBER_READ, "post": Perm.MEMBER_WRITE}
    template = "accounts/member_edit.html"

    def get(self, request, org, pk):
        member = self.scoped(Membership, pk=pk)
        initial = {"role": member.role, "status": member.status,
                   "custom_roles": list(Role.objects.for_org(self.org).filter(members=member))}
        form = MemberEditForm(initial=initial, org=self.org, membership=member)
        return self.render_page(self.template, member=member, form=form)

    def post(self, request, org, pk):
        member = self.scoped(Membership, pk=pk)
        form = MemberEditForm(request.POST, org=self.org, membership=member)
        if form.is_valid():
            try:
                policies.member_update(access=self.access, membership=member,
                                       role=form.cleaned_data["role"], status=form.cleaned_data["status"],
                                       custom_roles=list(form.cleaned_data["custom_roles"]))
            except ServiceError as exc:
                form_apply_service_error(form, exc)
                member.refresh_from_db()
                return self.render_page(self.template, status=exc.status, member=member, form=form)
            messages.success(request, f"Saved {member.user.email}.")
            return redirect("accounts:members", org=self.org.slug)
        return self.render_page(self.template, status=400, member=member, form=form)


class MemberRemoveView(OrgPageMixin, View):
    required = {"get": Perm.MEMBER_WRITE, "post": Perm.MEMBER_WRITE}
    template = "accounts/member_remove.html"

    def get(self, request, org, pk):
        return self.render_page(self.template, member=self.scoped(Membership, pk=pk))

    def post(self, request, org, pk):
        member = self.scoped(Membership, pk=pk)
        email = member.user.email
        try:
            policies.member_remove(access=self.access, membership=member)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.render_page(self.template, status=exc.status, member=member)
        messages.success(request, f"Removed {email}." if member.status != "invited"
                         else f"Cancelled the invitation of {email}.")
        return redirect("accounts:members", org=self.org.slug)


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyListView(OrgPageMixin, View):
    required = {"get": Perm.API_KEY_READ, "post": Perm.API_KEY_WRITE}
    template = "accounts/api_keys.html"

    def get(self, request, org):
        shown = secret_take(request, org=self.org, kinds=("api_key",))
        if shown is not None:  # the redirect after creation: the secret, once
            key = ApiKey.objects.for_org(self.org).filter(pk=shown.refs.get("key")).first()
            secret = shown.secret if key is not None else None
            return no_store(self.render_page("accounts/api_key_created.html", status=200 if secret else 410,
                                             key=key, secret=secret))
        return self.page(ApiKeyCreateForm())

    def post(self, request, org):
        form = ApiKeyCreateForm(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        data = form.cleaned_data
        try:
            key, secret = policies.api_key_create(access=self.access, name=data["name"],
                                                  permissions=data["permissions"],
                                                  expires_at=data["expires_at"])
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        # Shown by the GET this redirects to, once: a refresh there mints nothing (shown_once).
        handle = secret_hold(request, org=self.org, kind="api_key", secret=secret, key=key.pk)
        return redirect_to_shown(reverse("accounts:api-keys", args=[self.org.slug]), handle)

    def page(self, form, status=200):
        keys = ApiKey.objects.for_org(self.org).select_related("created_by").order_by("-created_at")
        groups = permission_groups(form, "permissions", self.access)
        return self.render_page(self.template, status=status, keys=keys, form=form, groups=groups)


class ApiKeyRevokeView(OrgPageMixin, View):
    required = {"get": Perm.API_KEY_WRITE, "post": Perm.API_KEY_WRITE}
    template = "accounts/api_key_revoke.html"

    def get(self, request, org, pk):
        return self.render_page(self.template, key=self.scoped(ApiKey, pk=pk))

    def post(self, request, org, pk):
        key = self.scoped(ApiKey, pk=pk)
        try:
            policies.api_key_revoke(access=self.access, key=key)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.render_page(self.template, status=exc.status, key=key)
        messages.success(request, f"Revoked {key.name}.")
        return redirect("accounts:api-keys", org=self.org.slug)


class MemberSecurityView(OrgPageMixin, View):
    """Buttons on a member's page: sign them out everywhere, or mail them a reset link."""

    required = {"post": Perm.MEMBER_WRITE}

    def post(self, request, org, pk):
        member = self.scoped(Membership, pk=pk)
        action = request.POST.get("action")
        try:
            if action == "revoke_sessions":
                policies.member_sessions_revoke(access=self.access, membership=member)
                messages.success(request, f"Signed {member.user.email} out of {self.org.name} everywhere.")
            elif action == "resend_invitation":
                policies.member_invitation_resend(access=self.access, membership=member)
                messages.success(request, f"Sent the invitation to {member.user.email} again.")
                return redirect("accounts:members", org=self.org.slug)
            elif action == "send_reset":
                policies.member_password_reset_send(access=self.access, membership=member)
                messages.success(request, f"Sent a password reset link to {member.user.email}.")
            else:
                messages.error(request, "Unknown action.")
        except ServiceError as exc:
            messages.error(request, exc.detail)
        return redirect("accounts:member-edit", org=self.org.slug, pk=member.pk)
