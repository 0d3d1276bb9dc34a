import time
import uuid

import factory

from accounts.models import ApiKey, Membership, User
from accounts.policy import AUTH_TIME_KEY, LAST_SEEN_KEY, MFA_TIME_KEY
from agents.models import Agent, Connection, Run, new_client_id
from audit.models import AuditChain
from core.models import Organization
from core.roles import BuiltinRole
from core.secrets import credential_mint
from rbac.models import Role, Team, TeamMembership
from scim.models import GroupMapping, ScimGroup, ScimGroupMember, ScimToken, ScimUser

PASSWORD = "correct horse battery staple 42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    display_name = factory.Faker("name")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        # Hashing is real Argon2 (~30 ms), so only users who log in get a usable password.
        if extracted:
            self.set_password(extracted)
        else:
            self.set_unusable_password()
        if create:
            self.save(update_fields=["password"])


class OrgFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.Sequence(lambda n: f"Organization {n}")

    @factory.post_generation
    def chain(self, create, extracted, **kwargs):
        if create:
            AuditChain.objects.get_or_create(chain=str(self.pk))


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrgFactory)
    user = factory.SubFactory(UserFactory)
    role = BuiltinRole.MEMBER


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    org = factory.SubFactory(OrgFactory)
    name = factory.Sequence(lambda n: f"Role {n}")
    permissions = factory.LazyFunction(lambda: ["agent:read"])


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    org = factory.SubFactory(OrgFactory)
    name = factory.Sequence(lambda n: f"Team {n}")


class TeamMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TeamMembership

    team = factory.SubFactory(TeamFactory)
    membership = factory.SubFactory(MemberFactory, org=factory.SelfAttribute("..team.org"))


def api_key_for(org, permissions, **fields) -> tuple[ApiKey, str]:
    """An API key row and its presentable secret, without going through the service.

    A key works only while a member stands behind it: unless `created_by` is given, its creator is
    a new owner of the org (so the key holds exactly its declared permissions)."""
    minted = credential_mint(ApiKey.PREFIX)
    if "created_by" not in fields:
        fields["created_by"] = MemberFactory(org=org, role=BuiltinRole.OWNER).user
    key = ApiKey.objects.create(
        org=org, name=fields.pop("name", "test key"), lookup_id=minted.lookup_id,
        secret_hash=minted.secret_hash, hash_kid=minted.hash_kid,
        permissions=[str(p) for p in permissions], **fields,
    )
    return key, minted.display


def sign_in(client, user, *, mfa: bool = False, auth_age: float = 0.0):
    """Log `client` in as a completed login would: fresh proof time, optionally a second factor.

    `auth_age` backdates the last proof (seconds), to test re-authentication and org timeouts.
    """
    client.force_login(user)
    session = client.session
    now = time.time()
    session[AUTH_TIME_KEY] = now - auth_age
    session[LAST_SEEN_KEY] = now
    session[MFA_TIME_KEY] = now if mfa else None
    session.save()
    return client


class ConnectionFactory(factory.django.DjangoModelFactory):
    """A downstream service. Its introspection secret is not known (use the service for one)."""

    class Meta:
        model = Connection

    org = factory.SubFactory(OrgFactory)
    name = factory.Sequence(lambda n: f"Service {n}")
    audience = factory.Sequence(lambda n: f"https://service{n}.example/api")
    scopes = factory.LazyFunction(lambda: ["t:read"])
    client_id = factory.LazyFunction(lambda: new_client_id("cnc"))
    lookup_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    secret_hash = "0" * 64
    hash_kid = "x"


class AgentFactory(factory.django.DjangoModelFactory):
    """An agent row with its grant written directly (no owner check): `owners=[membership, ...]`."""

    class Meta:
        model = Agent
        skip_postgeneration_save = True

    org = factory.SubFactory(OrgFactory)
    name = factory.Sequence(lambda n: f"bot {n}")
    client_id = factory.LazyFunction(lambda: new_client_id("agt"))
    scopes = factory.LazyFunction(lambda: ["t:read"])
    audiences = factory.LazyFunction(lambda: ["https://service.example/api"])

    @factory.post_generation
    def owners(self, create, extracted, **kwargs):
        if create and extracted:
            self.owners.set(extracted)


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    agent = factory.SubFactory(AgentFactory)
    org = factory.SelfAttribute("agent.org")
    started_by_type = "human"


class ScimTokenFactory(factory.django.DjangoModelFactory):
    """A SCIM token row whose secret nobody knows (scim.tokens.scim_token_create mints a usable one)."""

    class Meta:
        model = ScimToken

    org = factory.SubFactory(OrgFactory)
    name = "Okta"
    lookup_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    secret_hash = "0" * 64
    hash_kid = "x"


class ScimUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScimUser

    membership = factory.SubFactory(MemberFactory)
    org = factory.SelfAttribute("membership.org")
    user_name = factory.LazyAttribute(lambda u: u.membership.user.email)


class ScimGroupFactory(factory.django.DjangoModelFactory):
    """A pushed group; `members=[scim_user, ...]` puts them in it."""

    class Meta:
        model = ScimGroup
        skip_postgeneration_save = True

    org = factory.SubFactory(OrgFactory)
    display_name = factory.Sequence(lambda n: f"Group {n}")

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        for user in extracted or ():
            ScimGroupMember.objects.create(group=self, user=user)


class GroupMappingFactory(factory.django.DjangoModelFactory):
    """A mapping; its kind follows from what it grants (`builtin_role`, `role`, or `team`)."""

    class Meta:
        model = GroupMapping

    group = factory.SubFactory(ScimGroupFactory)
    org = factory.SelfAttribute("group.org")
    kind = factory.LazyAttribute(
        lambda m: "builtin_role" if m.builtin_role else "custom_role" if m.role else "team")
    builtin_role = ""
    role = None
