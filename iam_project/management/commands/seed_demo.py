import ipaddress

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings

from accounts.models import Membership, MembershipStatus, User, normalize_email
from accounts.services import membership_create, org_create, password_set, user_create
from agents.models import Agent, Connection
from agents.services import agent_create, connection_create
from audit.actors import Actor
from core.models import Organization
from core.permissions import Perm
from core.roles import BuiltinRole
from core.tenancy import org_scope
from rbac.models import Role, Team
from rbac.services import membership_custom_roles_set, role_create, team_create, team_standing_add

ACTOR = Actor.system("seed_demo")

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.example"
DEMO_PASSWORD = "demo-password-change-me"
PEOPLE = [
    ("alice@demo.example", "Alice Operator", BuiltinRole.MEMBER),
    ("bob@demo.example", "Bob Viewer", BuiltinRole.VIEWER),
    ("carol@demo.example", "Carol Billing", BuiltinRole.BILLING_ADMIN),
    ("dan@demo.example", "Dan Auditor", BuiltinRole.VIEWER),
]
# Invited, not yet accepted: the overview lists the invitation as waiting.
INVITED = ("erin@demo.example", BuiltinRole.MEMBER)
DEMO_CONNECTION = ("Ticket service", "https://tickets.demo.example/api", ["tickets:read", "tickets:write"])
DEMO_AGENT = ("Triage bot", ["tickets:read"])


class Command(BaseCommand):
    help = ("Create (idempotently) a demo organization with members, a team, a custom role, a connection "
            "and an agent. Accounts that already exist keep their passwords and sessions.")

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="allow in production mode")

    def handle(self, *args, **opts):
        if not settings.DEBUG and not opts["force"]:
            raise CommandError("seed_demo creates a known password; refusing in production mode")
        with transaction.atomic():
            owner = self._user(DEMO_OWNER, "Demo Owner")
            if not Organization.objects.filter(slug=DEMO_SLUG).exists():
                org_create(slug=DEMO_SLUG, name="Demo Org", owner=owner, actor=ACTOR)
            org = Organization.objects.get(slug=DEMO_SLUG)
            with org_scope(org):  # everything below acts in the demo org
                self._people(org)
                self._auditor_role(org)
                self._team(org)
                self._agent(org)
        with org_scope(org):
            self._invited(org, owner)
        self.stdout.write(self.style.SUCCESS("Demo organization ready."))
        self.stdout.write(f"  Sign in at {settings.IAM_CANONICAL_ORIGIN}/login/")
        self.stdout.write(f"  email:    {DEMO_OWNER}")
        self.stdout.write(f"  password: {DEMO_PASSWORD}")
        # Checked without the rehash-on-login setter: reading the hash never writes it.
        if not check_password(DEMO_PASSWORD, owner.password):
            self.stdout.write("            (changed since the demo was seeded, and left as it is; "
                              "use \"Forgot your password?\" on the sign-in page)")
        if _is_ip_address(settings.IAM_WEBAUTHN_RP_ID):
            self.stdout.write("  Passkeys need a host name, not an IP address: serve on localhost (the "
                              "make run default) or set IAM_CANONICAL_ORIGIN.")
        self.stdout.write(f"  agent:    {DEMO_AGENT[0]}, calling {DEMO_CONNECTION[1]}")
        self.stdout.write("  Client secrets are shown only at creation; rotate one on the agent's page "
                          f"({settings.IAM_CANONICAL_ORIGIN}/orgs/{DEMO_SLUG}/agents/) to get a usable one.")

    @staticmethod
    def _user(email, name):
        """The demo account, with the demo password only when this run creates it. Re-running must
        not undo a password someone chose or end their sessions (`password_set` ends every one)."""
        user = User.objects.filter(email=normalize_email(email)).first()
        if user is None:
            user = user_create(email=email, display_name=name)
            password_set(user=user, new_password=DEMO_PASSWORD, reason="seed_demo")
        return user

    def _people(self, org):
        for email, name, role in PEOPLE:
            user = self._user(email, name)
            if not Membership.objects.for_org(org).filter(user=user).exists():
                membership_create(org=org, user=user, role=role, actor=ACTOR, status=MembershipStatus.ACTIVE)

    @staticmethod
    def _invited(org, owner):
        email, role = INVITED
        user = User.objects.filter(email=normalize_email(email)).first()
        if user is None:
            user = user_create(email=email)
        if not Membership.objects.for_org(org).filter(user=user).exists():
            # Nobody reads erin's mailbox, and the console mail backend would print the link (a
            # secret) to the terminal: the demo's invitation is made but never mailed. The mail
            # goes when the transaction commits, so the transaction is inside the override.
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"), \
                    transaction.atomic():
                membership_create(org=org, user=user, role=role, actor=ACTOR, invited_by=owner)

    @staticmethod
    def _auditor_role(org):
        role = Role.objects.for_org(org).filter(name="Auditor").first()
        if role is None:
            role = role_create(org=org, name="Auditor", actor=ACTOR,
                               description="Reads the audit log and exports access reviews.",
                               permissions=[Perm.AUDIT_READ, Perm.ACCESS_REVIEW_EXPORT])
        dan = Membership.objects.for_org(org).get(user__email="dan@demo.example")
        membership_custom_roles_set(membership=dan, roles=[role], actor=ACTOR)

    @staticmethod
    def _team(org):
        if Team.objects.for_org(org).filter(name="Platform").exists():
            return
        team = team_create(org=org, name="Platform", description="Runs the agent fleet.", actor=ACTOR)
        alice = Membership.objects.for_org(org).get(user__email="alice@demo.example")
        team_standing_add(team=team, membership=alice, role="admin", actor=ACTOR)

    @staticmethod
    def _agent(org):
        # The secrets these calls return are dropped on purpose: printing them would leave them in
        # terminal scrollback and CI logs. The agent page's rotation shows a fresh one once.
        name, audience, scopes = DEMO_CONNECTION
        if not Connection.objects.for_org(org).filter(audience=audience).exists():
            connection_create(org=org, name=name, audience=audience, scopes=scopes, actor=ACTOR)
        agent_name, agent_scopes = DEMO_AGENT
        if Agent.objects.for_org(org).filter(name=agent_name).exists():
            return
        alice = Membership.objects.for_org(org).get(user__email="alice@demo.example")
        agent_create(org=org, name=agent_name, scopes=agent_scopes, audiences=[audience], owners=[alice],
                     actor=ACTOR)


def _is_ip_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return False
    return True
