"""Pages: login, logout, home and the org switcher; org members (list, detail, edit, remove) and org
API keys. Lists page and search as the admin API's lists do (web.paging, the viewsets' ordering)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views import View
from django.views.decorators.http import require_GET

from accounts.api import ApiKeyViewSet, MemberViewSet
from accounts.factors import factors_for_user
from accounts.forms import ApiKeyCreateForm, MemberAddForm, MemberEditForm, MemberFilterForm
from accounts.models import ApiKey, Membership, MembershipStatus
from accounts.people_selectors import (
    api_keys_live_made_by,
    member_audit_trail,
    member_session_count,
    member_sessions,
)
from accounts.selectors import member_search, orgs_for_user
from accounts.views.login import landing
from accounts.views.shown_once import no_store, redirect_to_shown, secret_hold, secret_take
from agents.people_selectors import agents_owned_by, delegations_granted_by, departure_preview
from core.errors import ServiceError
from core.permissions import Perm
from rbac import policies
from rbac.explain import member_access_explain
from rbac.models import Role
from web.forms import permission_groups
from web.pages import OrgPageMixin, confirmed, form_apply_service_error
from web.paging import list_page

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
    return redirect("console:overview", org=slug)


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
        filters = MemberFilterForm(self.request.GET)
        members = (
            Membership.objects.for_org(self.org)
            .select_related("user")
            .prefetch_related("custom_roles", "team_memberships__team")
        )
        if filters.is_valid():
            members = members.filter(filters.filters())
        else:  # an unknown role, status or source: say so, list nobody
            members, status = members.none(), 400
        page = list_page(self.request, members, ordering=MemberViewSet.list_ordering, search=member_search)
        # The filters go inside the search form, so searching keeps them and the pager links carry both.
        filter_fields = SafeString("".join(str(field.as_field_group()) for field in filters))
        return self.render_page(self.template, status=status, page=page, members=page.rows, form=form,
                                filters=filters, filter_fields=filter_fields,
                                filtered=filters.is_valid() and bool(filters.filters()))


class MemberDetailView(OrgPageMixin, View):
    """One member: their roles and where each permission comes from, teams, second factors, last
    sign-in, sessions, agents and delegations, and their audit trail. Panels that show more than
    member:read allows are shown only to readers holding what they need."""

    required = {"get": Perm.MEMBER_READ}
    template = "accounts/member_detail.html"

    def get(self, request, org, pk):
        member = get_member(self, pk)
        pending = member.status == MembershipStatus.INVITED
        can = self.access.has
        context = {
            "member": member, "pending": pending, "explained": member_access_explain(member),
            # Until the person accepts, their account (factors, sign-ins, sessions) is not the org's to see.
            "factors": None if pending else factors_for_user(member.user),
            "sessions": member_sessions(member) if can(Perm.MEMBER_WRITE) and not pending else None,
            # A session serves every org the person acts in: where and when it was last used is shown
            # only to the org that manages the account (its SCIM created it), never to every org.
            "sessions_detailed": member.user.scim_managed_by_id == self.org.pk,
            "agents": agents_owned_by(member) if can(Perm.AGENT_READ) else None,
            "delegations": delegations_granted_by(member) if can(Perm.AGENT_READ) else None,
            "trail": member_audit_trail(member) if can(Perm.AUDIT_READ) else None,
            "invitation": getattr(member, "invitation", None) if pending else None,
        }
        return self.render_page(self.template, **context)


def get_member(view, pk) -> Membership:
    """One membership of the view's org with its account (another org's is a 404)."""
    return get_object_or_404(Membership.objects.for_org(view.org).select_related("user"), pk=pk)


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
    """GET says what removing the member does, with counts (or what cancelling an invitation does);
    POST removes them once confirmed. A POST without the confirmation changes nothing."""

    required = {"get": Perm.MEMBER_WRITE, "post": Perm.MEMBER_WRITE}
    template = "accounts/member_remove.html"

    def get(self, request, org, pk):
        return self.confirm(get_member(self, pk))

    def post(self, request, org, pk):
        member = get_member(self, pk)
        if not confirmed(request):
            return self.confirm(member)
        email = member.user.email
        try:
            policies.member_remove(access=self.access, membership=member)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(member, status=exc.status)
        messages.success(request, f"Removed {email}." if member.status != "invited"
                         else f"Cancelled the invitation of {email}.")
        return redirect("accounts:members", org=self.org.slug)

    def confirm(self, member, status=200):
        if member.status == MembershipStatus.INVITED:
            return self.render_page(self.template, status=status, member=member,
                                    invitation=getattr(member, "invitation", None))
        # What accounts.departures' handlers will do (API keys; agents, their secrets, delegations).
        # SCIM tokens the member minted are revoked too; the page says so without a count.
        explained = member_access_explain(member)
        return self.render_page(
            self.template, status=status, member=member, api_keys=api_keys_live_made_by(member),
            agents=departure_preview(member), teams=len(explained.team_memberships),
            roles=len(explained.roles))


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
        keys = ApiKey.objects.for_org(self.org).select_related("created_by")
        page = list_page(self.request, keys, ordering=ApiKeyViewSet.list_ordering,
                         search_fields=ApiKeyViewSet.search_fields)
        groups = permission_groups(form, "permissions", self.access)
        return self.render_page(self.template, status=status, page=page, keys=page.rows, form=form,
                                groups=groups)


class ApiKeyRevokeView(OrgPageMixin, View):
    """GET says what revoking the key stops; POST revokes it once confirmed."""

    required = {"get": Perm.API_KEY_WRITE, "post": Perm.API_KEY_WRITE}
    template = "accounts/api_key_revoke.html"

    def get(self, request, org, pk):
        return self.render_page(self.template, key=self.scoped(ApiKey, pk=pk))

    def post(self, request, org, pk):
        key = self.scoped(ApiKey, pk=pk)
        if not confirmed(request):
            return self.render_page(self.template, key=key)
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
                if not confirmed(request):
                    return self.confirm_sign_out(member)
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
        return redirect("accounts:member-detail", org=self.org.slug, pk=member.pk)

    def confirm_sign_out(self, member):
        """What signing them out everywhere ends: their sessions' access to this org, or, where this
        org manages the account, the sessions themselves."""
        sessions = member_session_count(member) if member.status != MembershipStatus.INVITED else 0
        return self.render_page("accounts/member_sign_out.html", member=member, sessions=sessions,
                                managed_here=member.user.scim_managed_by_id == self.org.pk)
