"""A large org, fast: members, agents and audit entries by bulk insert, for the console's scale tests
and the overview benchmark. Rows are what the services would write (unusable passwords, since Argon2
for 1,000 people would take a minute; a valid, keyed audit chain), without going through them.

    org = OrgFactory(name="Big Co")
    big_org(org, members=1000, agents=200, audit_entries=10_000)
"""

import datetime
import uuid

from django.utils import timezone

from accounts.models import Membership, User
from agents.models import Agent, new_client_id
from audit.chain import entry_seal
from audit.events import AuditEvent, Outcome
from audit.models import GENESIS_HASH, AuditChain, AuditEntry, chain_key
from core.roles import BuiltinRole

BATCH = 500


def members_bulk(org, count: int, *, prefix: str = "person", role=BuiltinRole.MEMBER) -> list[Membership]:
    """`count` active members `{prefix}{n:04d}@{org slug}.example`, named "Person n"."""
    now = timezone.now()
    users = [User(email=f"{prefix}{n:04d}@{org.slug}.example", display_name=f"{prefix.title()} {n:04d}",
                  password="!unusable") for n in range(count)]
    User.objects.bulk_create(users, batch_size=BATCH)
    users = list(User.objects.filter(email__in=[u.email for u in users]).order_by("email"))
    members = [Membership(org=org, user=u, role=role, status="active",
                          created_at=now - datetime.timedelta(minutes=n)) for n, u in enumerate(users)]
    Membership.objects.bulk_create(members, batch_size=BATCH)
    return members


def agents_bulk(org, count: int, *, owner: Membership, prefix: str = "agent") -> list[Agent]:
    """`count` active agents `{prefix}-{n:03d}`, each owned by `owner`, with the owner's grant."""
    agents = [Agent(org=org, name=f"{prefix}-{n:03d}", client_id=new_client_id("agt"), scopes=["t:read"],
                    audiences=["https://service.example/api"], created_by=owner.user)
              for n in range(count)]
    Agent.objects.bulk_create(agents, batch_size=BATCH)
    through = Agent.owners.through
    through.objects.bulk_create([through(agent_id=a.pk, membership_id=owner.pk) for a in agents],
                                batch_size=BATCH)
    return agents


def audit_bulk(org, count: int, *, actor: Membership, start: datetime.datetime | None = None,
               people: list[Membership] | None = None) -> None:
    """`count` entries appended to the org's chain, a minute apart from `start` (default: ending now),
    as a sealed and valid chain: sign-ins, failed sign-ins and member changes in turn, by `actor`.
    With `people`, entry n is by and about people[n % len(people)] instead (many distinct actors and
    targets, as a real log has)."""
    chain, _ = AuditChain.objects.get_or_create(chain=chain_key(org))
    seq, prev = chain.last_seq, chain.last_hash or GENESIS_HASH
    start = start or timezone.now() - datetime.timedelta(minutes=count)
    kinds = [(AuditEvent.LOGIN_SUCCEEDED, Outcome.SUCCESS, {"method": "password"}),
             (AuditEvent.LOGIN_FAILED, Outcome.FAILURE, {"reason": "bad_password", "method": "password"}),
             (AuditEvent.MEMBER_UPDATED, Outcome.SUCCESS, {"role": "admin", "previous_role": "member"})]
    entries = []
    for n in range(count):
        event, outcome, data = kinds[n % len(kinds)]
        who = people[n % len(people)] if people else actor
        seq += 1
        entry = AuditEntry(
            org=org, chain=chain_key(org), seq=seq, ts=start + datetime.timedelta(minutes=n),
            actor_type="human", actor_id=str(who.user_id), actor_display=who.user.email,
            event_code=event.code, event_name=event.label, outcome=outcome, ip="192.0.2.10",
            user_agent="Mozilla/5.0", correlation_id=uuid.uuid4().hex, target_type="membership",
            target_id=str(who.pk), data=data, prev_hash=prev,
        )
        entry_seal(entry)
        prev = entry.hash
        entries.append(entry)
    AuditEntry.objects.bulk_create(entries, batch_size=BATCH)
    AuditChain.objects.filter(pk=chain.pk).update(last_seq=seq, last_hash=prev)


def big_org(org, *, members: int = 1000, agents: int = 200, audit_entries: int = 10_000,
            owner: Membership | None = None, start: datetime.datetime | None = None) -> Membership:
    """Fill `org`: its owner (given, or a new one), members, agents owned by the owner, audit entries."""
    if owner is None:
        owner = members_bulk(org, 1, prefix="owner", role=BuiltinRole.OWNER)[0]
    members_bulk(org, members)
    agents_bulk(org, agents, owner=owner)
    audit_bulk(org, audit_entries, actor=owner, start=start)
    return owner
