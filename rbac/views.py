"""Pages: teams (list, create, detail with members and granted roles, delete) and roles (list, editor,
delete). Lists page and search as the admin API's lists do (web.paging, the viewsets' ordering)."""

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.views import View

from core.errors import ServiceError
from core.permissions import Perm
from core.roles import BUILTIN_ROLES, BuiltinRole
from rbac import policies
from rbac.api import RoleViewSet, TeamViewSet
from rbac.forms import (
    RoleForm,
    TeamCreateForm,
    TeamMemberAddForm,
    TeamMemberRoleForm,
    TeamRolesForm,
)
from rbac.models import Role, Team, TeamMembership
from web.forms import permission_groups
from web.pages import OrgPageMixin, confirmed, form_apply_service_error
from web.paging import list_page

# --- Teams ------------------------------------------------------------------------------------


class TeamListView(OrgPageMixin, View):
    required = {"get": Perm.TEAM_READ, "post": Perm.TEAM_WRITE}
    template = "rbac/teams.html"

    def get(self, request, org):
        return self.page(TeamCreateForm())

    def post(self, request, org):
        form = TeamCreateForm(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            team = policies.team_create(access=self.access, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Created team {team.name}.")
        return redirect("rbac:team-detail", org=self.org.slug, pk=team.pk)

    def page(self, form, status=200):
        teams = (Team.objects.for_org(self.org).annotate(member_count=Count("memberships"))
                 .prefetch_related("roles"))
        page = list_page(self.request, teams, ordering=TeamViewSet.list_ordering,
                         search_fields=TeamViewSet.search_fields)
        return self.render_page(self.template, status=status, page=page, teams=page.rows, form=form)


class TeamDetailView(OrgPageMixin, View):
    """One page, several small forms; `action` names which one was submitted. Team admins (not only
    TEAM_WRITE holders) manage a team, so POST needs TEAM_READ and the services check standing."""

    required = {"get": Perm.TEAM_READ, "post": Perm.TEAM_READ}
    template = "rbac/team_detail.html"
    actions = {"add_member", "set_member_role", "remove_member", "set_roles"}

    def get(self, request, org, pk):
        return self.page(self.scoped(Team, pk=pk))

    def post(self, request, org, pk):
        team = self.scoped(Team, pk=pk)
        action = request.POST.get("action", "")
        if action not in self.actions:
            messages.error(request, "Unknown action.")
            return self.page(team, status=400)
        return getattr(self, action)(request, team)

    def add_member(self, request, team):
        form = TeamMemberAddForm(request.POST, org=self.org, team=team)
        if not form.is_valid():
            return self.page(team, status=400, add_form=form)
        membership = form.cleaned_data["member"]
        return self.run(team, f"Added {membership.user.email}.", policies.team_member_add,
                        team=team, membership=membership, role=form.cleaned_data["role"])

    def set_member_role(self, request, team):
        tm = self.team_membership(request, team)
        form = TeamMemberRoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a team role.")
            return self.page(team, status=400)
        return self.run(team, "Team role changed.", policies.team_member_update,
                        team_membership=tm, role=form.cleaned_data["role"])

    def remove_member(self, request, team):
        tm = self.team_membership(request, team)
        return self.run(team, "Removed from the team.", policies.team_member_remove, team_membership=tm)

    def set_roles(self, request, team):
        form = TeamRolesForm(request.POST, org=self.org)
        if not form.is_valid():
            return self.page(team, status=400, roles_form=form)
        return self.run(team, "Team roles saved.", policies.team_update,
                        team=team, roles=list(form.cleaned_data["roles"]))

    def team_membership(self, request, team):
        # Reached through the org-scoped team, so another org's row is a 404.
        return get_object_or_404(
            TeamMembership.objects.select_related("team", "membership"),
            team=team, pk=request.POST.get("team_membership") or 0,
        )

    def run(self, page_team, success: str, service, **kwargs):
        """Call one service; its refusal is shown on the team page with the service's status."""
        try:
            service(access=self.access, **kwargs)
        except ServiceError as exc:
            messages.error(self.request, exc.detail)
            return self.page(page_team, status=exc.status)
        messages.success(self.request, success)
        return redirect("rbac:team-detail", org=self.org.slug, pk=page_team.pk)

    def page(self, team, status=200, add_form=None, roles_form=None):
        # A team of a thousand is paged like any list (oldest standing first) and searched by address.
        team_members = list_page(self.request, TeamMembership.objects.filter(team=team)
                                 .select_related("membership__user"), ordering="created_at",
                                 search_fields=("membership__user__email",))
        granted = list(team.roles.order_by("name"))
        return self.render_page(
            self.template, status=status, team=team, page=team_members, team_members=team_members.rows,
            granted=granted,
            can_manage=self.access.can_manage_team(team.pk),
            add_form=add_form or TeamMemberAddForm(org=self.org, team=team),
            roles_form=roles_form or TeamRolesForm(org=self.org, initial={"roles": granted}),
            team_roles=TeamMemberRoleForm.base_fields["role"].choices,
        )


class TeamDeleteView(OrgPageMixin, View):
    """GET says who loses what when the team goes; POST deletes it once confirmed. Team owners (not
    only TEAM_WRITE holders) may delete their team, so both need TEAM_READ and the service decides."""

    required = {"get": Perm.TEAM_READ, "post": Perm.TEAM_READ}
    template = "rbac/team_delete.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(Team, pk=pk))

    def post(self, request, org, pk):
        team = self.scoped(Team, pk=pk)
        if not confirmed(request):
            return self.confirm(team)
        name = team.name
        try:
            policies.team_delete(access=self.access, team=team)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(team, status=exc.status)
        messages.success(request, f"Deleted team {name}.")
        return redirect("rbac:teams", org=self.org.slug)

    def confirm(self, team, status=200):
        roles = list(team.roles.order_by("name"))
        return self.render_page(self.template, status=status, team=team, roles=roles,
                                members=team.memberships.count(),
                                can_manage=self.access.can_manage_team(team.pk))


# --- Roles ------------------------------------------------------------------------------------


class RoleListView(OrgPageMixin, View):
    required = {"get": Perm.ROLE_READ}
    template = "rbac/roles.html"

    def get(self, request, org):
        builtin = [
            {"name": label, "key": key, "perms": sorted(BUILTIN_ROLES[key])}
            for key, label in BuiltinRole.choices
        ]
        page = list_page(request, Role.objects.for_org(self.org), ordering=RoleViewSet.list_ordering,
                         search_fields=RoleViewSet.search_fields)
        return self.render_page(self.template, builtin=builtin, page=page, custom=page.rows)


class RoleCreateView(OrgPageMixin, View):
    required = {"get": Perm.ROLE_WRITE, "post": Perm.ROLE_WRITE}
    template = "rbac/role_form.html"

    def get(self, request, org):
        return self.page(RoleForm())

    def post(self, request, org):
        form = RoleForm(request.POST)
        if not form.is_valid():
            return self.page(form, status=400)
        try:
            role = policies.role_create(access=self.access, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            return self.page(form, status=exc.status)
        messages.success(request, f"Created role {role.name}.")
        return redirect("rbac:roles", org=self.org.slug)

    def page(self, form, status=200):
        groups = permission_groups(form, "permissions", self.access)
        return self.render_page(self.template, status=status, form=form, groups=groups, role=None)


class RoleEditView(OrgPageMixin, View):
    required = {"get": Perm.ROLE_READ, "post": Perm.ROLE_WRITE}
    template = "rbac/role_form.html"

    def get(self, request, org, pk):
        role = self.scoped(Role, pk=pk)
        form = RoleForm(initial={"name": role.name, "description": role.description})
        return self.page(role, form)

    def post(self, request, org, pk):
        role = self.scoped(Role, pk=pk)
        if request.POST.get("action") == "delete":  # deleting is asked for on its own page first
            return redirect("rbac:role-delete", org=self.org.slug, pk=role.pk)
        form = RoleForm(request.POST)
        if not form.is_valid():
            return self.page(role, form, status=400)
        try:
            policies.role_update(access=self.access, role=role, **form.cleaned_data)
        except ServiceError as exc:
            form_apply_service_error(form, exc)
            role.refresh_from_db()
            return self.page(role, form, status=exc.status)
        messages.success(request, f"Saved role {role.name}.")
        return redirect("rbac:roles", org=self.org.slug)

    def page(self, role, form, status=200):
        groups = permission_groups(form, "permissions", self.access, initial=role.permissions)
        beyond_mine = not self.access.has_all(role.perms)
        return self.render_page(self.template, status=status, form=form, groups=groups, role=role,
                                beyond_mine=beyond_mine)


class RoleDeleteView(OrgPageMixin, View):
    """GET asks for confirmation and says who holds the role (it is also where re-authentication
    comes back to); POST deletes it once confirmed. Everyone holding it loses it at once."""

    required = {"get": Perm.ROLE_WRITE, "post": Perm.ROLE_WRITE}
    template = "rbac/role_delete.html"

    def get(self, request, org, pk):
        return self.confirm(self.scoped(Role, pk=pk))

    def post(self, request, org, pk):
        role = self.scoped(Role, pk=pk)
        if not confirmed(request):
            return self.confirm(role)
        name = role.name
        try:
            policies.role_delete(access=self.access, role=role)
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return self.confirm(role, status=exc.status)
        messages.success(request, f"Deleted role {name}.")
        return redirect("rbac:roles", org=self.org.slug)

    def confirm(self, role, status=200):
        teams = Team.objects.for_org(self.org).filter(roles=role)
        through_teams = (TeamMembership.objects.filter(team__in=teams)
                         .values("membership").distinct().count())
        return self.render_page(
            self.template, status=status, role=role, members=role.members.count(), teams=teams.count(),
            through_teams=through_teams, beyond_mine=not self.access.has_all(role.perms))
