"""Deleting a custom role and removing a second factor are asked for on a confirmation page first
(the role's page says who holds it); a POST without the confirmation changes nothing."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import WebAuthnCredential
from audit.models import AuditEntry
from rbac.models import Role, RoleAssignment
from tests.factories import MemberFactory, RoleFactory, TeamFactory, TeamMemberFactory, sign_in
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def role_url(name, role):
    return reverse(f"rbac:{name}", kwargs={"org": role.org.slug, "pk": role.pk})


@pytest.fixture
def held_role(org):
    """A role two members hold directly and one team (of three people, one a direct holder) grants."""
    role = RoleFactory(org=org, name="Agent ops", permissions=["agent:read"])
    direct = [MemberFactory(org=org), MemberFactory(org=org)]
    for member in direct:
        member.custom_roles.add(role)
    team = TeamFactory(org=org, name="Platform")
    team.roles.add(role)
    for member in (direct[0], MemberFactory(org=org), MemberFactory(org=org)):
        TeamMemberFactory(team=team, membership=member)
    return role


def role_state(role):
    return (Role.objects.filter(pk=role.pk).exists(), RoleAssignment.objects.filter(role=role).count(),
            role.teams.count())


def test_the_role_page_links_to_a_confirmation_that_says_who_holds_it(owner, held_role):
    client = sign_in(Client(), owner.user)
    edit = client.get(role_url("role-edit", held_role)).content.decode()
    assert f'href="{role_url("role-delete", held_role)}"' in edit and 'value="delete"' not in edit
    confirm = client.get(role_url("role-delete", held_role))
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "Delete role “Agent ops”?" in body
    assert "2 members and 1 team hold it (3 members through those teams)." in body
    assert 'name="confirm" value="yes"' in body


def test_delete_without_the_confirmation_changes_nothing(org, owner, held_role):
    client = sign_in(Client(), owner.user)
    before = role_state(held_role)
    # The edit page's old one-click delete now only leads to the question.
    old_button = client.post(role_url("role-edit", held_role), {"action": "delete"})
    assert old_button.status_code == 302 and old_button["Location"] == role_url("role-delete", held_role)
    bare = client.post(role_url("role-delete", held_role))
    assert bare.status_code == 200 and "Delete role “Agent ops”?" in bare.content.decode()
    assert role_state(held_role) == before
    assert not audit_events(org, "role.deleted").exists()


def test_delete_once_confirmed(org, owner, held_role):
    response = sign_in(Client(), owner.user).post(role_url("role-delete", held_role), {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == reverse("rbac:roles", args=[org.slug])
    assert role_state(held_role) == (False, 0, 0)
    assert audit_events(org, "role.deleted").get().data == {"name": "Agent ops"}


def test_a_role_beyond_the_callers_permissions_offers_no_delete_and_a_post_is_refused(org, held_role):
    editor = MemberFactory(org=org)
    editor.custom_roles.add(RoleFactory(org=org, name="Role admins", permissions=["role:read", "role:write"]))
    powerful = RoleFactory(org=org, name="Owners-ish", permissions=["org:delete"])
    client = sign_in(Client(), editor.user)
    confirm = client.get(role_url("role-delete", powerful)).content.decode()
    assert "you cannot delete it" in confirm and 'name="confirm"' not in confirm
    refused = client.post(role_url("role-delete", powerful), {"confirm": "yes"})
    assert refused.status_code == 403
    assert Role.objects.filter(pk=powerful.pk).exists()
    assert audit_events(org, "access.escalation_denied").get().data["missing"] == ["org:delete"]


def test_a_stale_session_confirming_goes_to_re_authentication_first(owner, held_role):
    client = sign_in(Client(), owner.user, auth_age=3600)
    before = role_state(held_role)
    response = client.post(role_url("role-delete", held_role), {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"].startswith("/reauth/")
    assert role_state(held_role) == before


# --- Second factors ------------------------------------------------------------------------------


def passkey_of(user, name="Work laptop"):
    return WebAuthnCredential.objects.create(user=user, name=name, credential_id=f"id-{name}",
                                             public_key=b"k")


def removed_events():
    return AuditEntry.objects.for_org(None).filter(event_name="mfa.removed")


def test_the_security_page_links_to_a_confirmation_before_removing_a_passkey(owner):
    passkey = passkey_of(owner.user)
    client = sign_in(Client(), owner.user)
    remove = reverse("accounts:mfa-remove", kwargs={"kind": "passkey", "pk": passkey.pk})
    security = client.get(reverse("accounts:mfa-setup")).content.decode()
    assert f'href="{remove}"' in security and f'action="{remove}"' not in security
    confirm = client.get(remove)
    assert confirm.status_code == 200
    assert "Remove passkey “Work laptop”?" in confirm.content.decode()
    assert 'name="confirm" value="yes"' in confirm.content.decode()


def test_removing_a_passkey_without_the_confirmation_changes_nothing(owner):
    passkey, spare = passkey_of(owner.user), passkey_of(owner.user, "Spare key")
    client = sign_in(Client(), owner.user)
    remove = reverse("accounts:mfa-remove", kwargs={"kind": "passkey", "pk": passkey.pk})
    bare = client.post(remove)
    assert bare.status_code == 200 and "Remove passkey “Work laptop”?" in bare.content.decode()
    assert WebAuthnCredential.objects.filter(pk=passkey.pk).exists()
    assert not removed_events().exists()
    done = client.post(remove, {"confirm": "yes"})
    assert done.status_code == 302
    assert list(WebAuthnCredential.objects.values_list("pk", flat=True)) == [spare.pk]
    assert removed_events().get().data == {"method": "webauthn", "device": passkey.pk}
