"""Mapping a SCIM group: the group, the custom role and the team are typed into pickers that search
the admin API (`scim-groups`, `roles`, `teams`) instead of selects of every row, and what is typed
resolves within the org only."""

import pytest

from scim.models import GroupMapping
from tests.factories import OrgFactory, RoleFactory, ScimGroupFactory, TeamFactory
from tests.provisioning_console.conftest import api_client, api_path, html, queries, scim_url

pytestmark = pytest.mark.django_db


def test_the_form_offers_searching_pickers_not_every_group_role_and_team(org, client):
    for n in range(40):
        ScimGroupFactory(org=org, display_name=f"Engineering {n:02d}")
        RoleFactory(org=org, name=f"Role {n:02d}")
        TeamFactory(org=org, name=f"Team {n:02d}")
    page = html(client.get(scim_url("mappings", org)))
    form = page.split('id="new-mapping-title"')[1]
    for field, api, options in (("group", "scim-groups", "mapping-group-options"),
                                ("role", "roles", "mapping-role-options"),
                                ("team", "teams", "mapping-team-options")):
        assert f'name="{field}"' in form and f'list="{options}"' in form
        assert f'<datalist id="{options}">' in form
        assert f'data-picker="/api/v1/orgs/{org.slug}/{api}"' in form
    assert "<option" not in form.split('name="group"')[1].split("</div>")[0]
    assert "Role 39" not in form and "Team 39" not in form and "Engineering 39" not in form


def test_a_typed_name_in_any_case_maps_the_group_to_a_team(org, client):
    group = ScimGroupFactory(org=org, display_name="Platform Engineers")
    team = TeamFactory(org=org, name="Platform")
    response = client.post(scim_url("mappings", org), {"group": "platform engineers", "kind": "team",
                                                       "team": "PLATFORM", "team_role": "member"})
    assert response.status_code == 302, html(response)[:3000]
    mapping = GroupMapping.objects.for_org(org).get()
    assert (mapping.group, mapping.team, mapping.team_role) == (group, team, "member")


def test_another_orgs_group_or_role_by_name_is_a_field_error_and_maps_nothing(org, client):
    other = OrgFactory()
    ScimGroupFactory(org=other, display_name="Theirs")
    RoleFactory(org=other, name="Their role")
    ScimGroupFactory(org=org, display_name="Ours")
    for form, field in (({"group": "Theirs", "kind": "builtin_role", "builtin_role": "member"}, "group"),
                        ({"group": "Ours", "kind": "custom_role", "role": "Their role"}, "role")):
        response = client.post(scim_url("mappings", org), form)
        assert response.status_code == 400
        assert response.context["form"].errors[field] == [f"Nothing here is named {form[field]}."]
    assert not GroupMapping.objects.for_org(org).exists()


def test_the_groups_api_searches_by_name_at_the_same_queries_at_any_size():
    costs = []
    for size in (3, 60):
        org = OrgFactory()
        for n in range(size):
            ScimGroupFactory(org=org, display_name=f"Group {n:03d}", external_id=f"okta-{n:03d}")
        api = api_client(org, ["scim:read"])
        costs.append(queries(api, api_path(org, "scim-groups")))
        found = api.get(api_path(org, "scim-groups"), {"q": "okta-002"}).json()["results"]
        assert [(g["display_name"], g["members"]) for g in found] == [("Group 002", 0)]
    assert costs[0] == costs[1], costs
    ScimGroupFactory(org=OrgFactory(), display_name="Elsewhere")
    assert not api.get(api_path(org, "scim-groups"), {"q": "Elsewhere"}).json()["results"]


def test_names_that_differ_only_by_case_resolve_only_as_typed_exactly(org, client):
    ScimGroupFactory(org=org, display_name="Ops")
    admins, shouting = RoleFactory(org=org, name="Admins"), RoleFactory(org=org, name="ADMINS")
    form = {"group": "ops", "kind": "custom_role"}
    assert client.post(scim_url("mappings", org), {**form, "role": "ADMINS"}).status_code == 302
    assert GroupMapping.objects.for_org(org).get().role == shouting
    GroupMapping.objects.for_org(org).delete()
    refused = client.post(scim_url("mappings", org), {**form, "role": "admins"})  # either, by case
    assert refused.status_code == 400 and "More than one is named admins" in html(refused)
    assert not GroupMapping.objects.for_org(org).exists()
    assert client.post(scim_url("mappings", org), {**form, "role": str(admins.pk)}).status_code == 302
