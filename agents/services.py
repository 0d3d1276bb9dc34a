"""Effects on agents, their owners and grants, connections, and revocation.

Each takes the `actor` it acts for and audits inside its transaction. The invariant every one of
them keeps: an agent never out-ranks the people accountable for it. Its owners are acting members
of its own org, and every owner must be able to hand out each scope it is granted (checked here when
the grant is set, and again at every token issuance). Who may ask is agents.policies' decision.
Client secrets are in agents.rotation, task runs in agents.runs.
"""

import ipaddress

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ACTING_STATUSES, Membership
from agents import introspection, revocation
from agents.grants import delegable_scopes, scope_needs
from agents.models import Agent, AgentSecret, AgentStatus, Connection, new_client_id
from agents.policy import agent_policy_for_org
from agents.rotation import agent_secret_create, assert_not_revoked, secret_end
from agents.runs import runs_end_for_agent
from agents.selectors import connection_agents, owners_permissions
from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, cross_tenant, records_denials
from core.credentials import credential_live_q
from core.errors import Conflict, DenialAudit, Forbidden, Invalid
from core.tenancy import assert_same_org
from rbac.guard import membership_permissions


def grant_shape(org, scopes, audiences) -> tuple[list, list]:
    """The grant as stored (sorted, without repeats), once every audience is a registered connection
    of the org and every scope one of those connections accepts."""
    scopes, audiences = sorted(set(scopes)), sorted(set(audiences))
    if not audiences:
        raise Invalid("Give the agent at least one audience.", fields={"audiences": ["Required."]})
    # Locked, in the caller's transaction: a connection's update or deletion cannot pass between
    # this check and the grant's save (connection_update, connection_delete take the same lock).
    connections = list(Connection.objects.for_org(org).filter(audience__in=audiences)
                       .select_for_update().order_by("pk"))
    known = {c.audience for c in connections}
    if known != set(audiences):
        raise Invalid("Unknown audience.", fields={
            "audiences": [f"No connection has the audience {a}." for a in audiences if a not in known]})
    offered = set().union(*(c.scopes for c in connections))
    if set(scopes) - offered:
        raise Invalid("Unknown scope.", fields={
            "scopes": [f"No connection of this agent accepts {s}." for s in scopes if s not in offered]})
    return scopes, audiences


def owners_missing(scopes, owners) -> set:
    """Permissions the grant needs that some owner lacks (none when every owner covers it)."""
    needed = {scope_needs(s) for s in scopes}
    missing: set = set()
    for perms in (membership_permissions(o) for o in owners):
        missing |= needed - perms
    return missing


def _assert_owners(org, owners, scopes, actor: Actor) -> None:
    if not owners:
        raise Invalid("An agent needs at least one owner.", fields={"owners": ["Required."]})
    assert_same_org(org, *owners, audit=cross_tenant(org, actor))
    missing = owners_missing(scopes, owners)
    if missing:
        raise Forbidden(
            "The agent's grant would exceed what its owners hold.", code="escalation_denied",
            audit=DenialAudit(org=org, actor=actor, event=AuditEvent.ESCALATION_DENIED,
                              data={"reason": "agent_grant", "missing": sorted(missing)}),
        )


@records_denials
@transaction.atomic
def agent_create(*, org, name: str, scopes, audiences, owners, actor: Actor,
                 created_by=None) -> tuple[Agent, str]:
    """Register an agent with its grant and first client secret (returned once)."""
    scopes, audiences = grant_shape(org, scopes, audiences)
    _assert_owners(org, owners, scopes, actor)
    if Agent.objects.for_org(org).filter(name=name).exists():
        raise Conflict("An agent with this name already exists.", code="duplicate",
                       fields={"name": ["Already taken."]})
    agent = Agent.objects.create(org=org, name=name, client_id=new_client_id("agt"),
                                 scopes=scopes, audiences=audiences, created_by=created_by)
    agent.owners.set(owners)
    secret, display = agent_secret_create(agent, created_by)
    audit_record(org=org, actor=actor, event=AuditEvent.AGENT_CREATED, target=Target.of(agent),
                 data={"name": name, "scopes": scopes, "audiences": audiences,
                       "owners": [str(o.pk) for o in owners]})
    audit_record(org=org, actor=actor, event=AuditEvent.SECRET_ISSUED, target=Target.of(agent),
                 data={"secret": str(secret.pk)})
    return agent, display


@records_denials
@transaction.atomic
def agent_grant_update(*, agent: Agent, actor: Actor, scopes=None, audiences=None, owners=None) -> Agent:
    owners = owners if owners is not None else list(agent.owners.all())
    previous = (list(agent.scopes), list(agent.audiences))
    new_scopes, new_audiences = grant_shape(agent.org, agent.scopes if scopes is None else scopes,
                                            agent.audiences if audiences is None else audiences)
    _assert_owners(agent.org, owners, new_scopes, actor)
    agent.scopes, agent.audiences = new_scopes, new_audiences
    agent.save(update_fields=["scopes", "audiences"])
    agent.owners.set(owners)
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_GRANT_CHANGED, target=Target.of(agent),
                 data={"scopes": new_scopes, "audiences": new_audiences, "previous_scopes": previous[0],
                       "previous_audiences": previous[1], "owners": [str(o.pk) for o in owners]})
    return agent


# Checks the layers above register for resuming an agent (trust.apps: a contained agent comes back
# only once its score has recovered). Each is called with the agent and raises a core.errors error
# to refuse; this core imports nothing above it.
RESUME_CHECKS: list = []


@records_denials
@transaction.atomic
def agent_status_set(*, agent: Agent, status: str, actor: Actor) -> Agent:
    """Suspend (tokens die at once, new ones are refused) or resume an agent."""
    assert_not_revoked(agent)
    if status not in (AgentStatus.ACTIVE, AgentStatus.SUSPENDED):
        raise Invalid("Unknown status.", fields={"status": ["Use active or suspended."]})
    # Locked, and read again on the caller's instance (which pages then show): a containment or
    # another change in between is seen here.
    agent.status, agent.contained_at = (Agent.objects.for_org(agent.org_id).select_for_update()
                                        .values_list("status", "contained_at").get(pk=agent.pk))
    if status == agent.status:
        return agent
    if status == AgentStatus.ACTIVE:
        for check in RESUME_CHECKS:
            check(agent)
        agent.contained_at = None
    agent.status = status
    agent.save(update_fields=["status", "contained_at"])
    if status == AgentStatus.SUSPENDED:
        revocation.cut_off("agent", agent.subject)
    event = AuditEvent.AGENT_SUSPENDED if status == AgentStatus.SUSPENDED else AuditEvent.AGENT_RESUMED
    audit_record(org=agent.org, actor=actor, event=event, target=Target.of(agent))
    return agent


@transaction.atomic
def agent_contain(*, agent: Agent, actor: Actor, evidence: dict) -> bool:
    """Suspend an agent whose trust score fell below the org's floor, with nobody acting: its
    tokens and every token delegated from them die on their next verification, its live runs end,
    and it stays suspended until an owner resumes it (RESUME_CHECKS decide when it may). False if
    it was not active (nothing to do)."""
    agent = Agent.objects.for_org(agent.org_id).select_for_update().select_related("org").get(pk=agent.pk)
    if agent.status != AgentStatus.ACTIVE:
        return False
    agent.status, agent.contained_at = AgentStatus.SUSPENDED, timezone.now()
    agent.save(update_fields=["status", "contained_at"])
    revocation.cut_off("agent", agent.subject)
    ended = runs_end_for_agent(agent=agent, actor=actor, reason="contained")
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_CONTAINED, target=Target.of(agent),
                 data={**evidence, "runs_ended": ended})
    return True


@transaction.atomic
def agent_suspend_orphaned(*, agent: Agent, actor: Actor) -> Agent:
    """Suspend an agent nobody can answer for any more: its tokens die at once, every live secret
    ends, and new tokens are refused until an owner resumes it and rotates in a new secret."""
    agent = Agent.objects.for_org(agent.org).select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.REVOKED:
        return agent
    now = timezone.now()
    if agent.status != AgentStatus.SUSPENDED:
        agent.status = AgentStatus.SUSPENDED
        agent.save(update_fields=["status"])
        audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_SUSPENDED, target=Target.of(agent))
    revocation.cut_off("agent", agent.subject)
    for secret in agent.secrets.order_by("created_at"):
        if secret.is_live(now):
            secret_end(actor, secret, now, how="owner_deprovisioned")
    return agent


@records_denials
@transaction.atomic
def agent_owner_replace(*, agent: Agent, leaving: Membership, actor: Actor,
                        successor: Membership | None = None) -> Agent:
    """Take `leaving` off the agent's owners, adding `successor` (the org's fallback owner) if given.

    No escalation check against the successor: the org's policy named them, and every issuance
    checks the grant against the owners' permissions of the moment anyway.
    """
    assert_same_org(agent.org, leaving, successor, audit=cross_tenant(agent.org, actor))
    agent.owners.remove(leaving)
    if successor is not None:
        agent.owners.add(successor)
    owners = sorted(str(pk) for pk in agent.owners.values_list("pk", flat=True))
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_GRANT_CHANGED, target=Target.of(agent),
                 data={"scopes": agent.scopes, "audiences": agent.audiences, "previous_scopes": agent.scopes,
                       "previous_audiences": agent.audiences, "owners": owners})
    return agent


def _fallback_owner(org, leaving: Membership) -> Membership | None:
    """The policy's fallback owner when the policy says "reassign" and that member can act."""
    policy = agent_policy_for_org(org)
    if policy.deprovision_agents != "reassign" or not policy.deprovision_fallback_owner_id:
        return None
    fallback = Membership.objects.for_org(org).filter(pk=policy.deprovision_fallback_owner_id).first()
    if fallback is None or fallback.pk == leaving.pk or not fallback.can_act:
        return None
    return fallback


def _departing_agents(membership: Membership) -> list[Agent]:
    """The agents a leaving member answers for here: owned, registered by them, or holding a live
    secret that was handed to them."""
    now = timezone.now()
    held = (AgentSecret.objects.for_org(membership.org_id).filter(created_by_id=membership.user_id)
            .filter(credential_live_q(now))
            .values("agent_id"))
    return list(Agent.objects.for_org(membership.org_id)
                .filter(Q(owners=membership) | Q(created_by_id=membership.user_id) | Q(pk__in=held))
                .distinct().order_by("pk"))


@transaction.atomic
def agents_release_owner(*, membership: Membership, actor: Actor) -> tuple[int, int]:
    """A member leaves: every secret of an agent here that was handed to them ends (they may keep a
    copy), they come off every agent they own, and agents they answered for that are left with no
    acting owner go to the org's fallback owner, or are suspended with their credentials (the org's
    deprovisioning policy).

    Returns (reassigned, suspended).
    """
    org = membership.org
    agents = _departing_agents(membership)
    fallback = _fallback_owner(org, membership) if agents else None
    reassigned = suspended = 0
    now = timezone.now()
    for agent in agents:
        for secret in agent.secrets.filter(created_by_id=membership.user_id).order_by("created_at"):
            if secret.is_live(now):
                secret_end(actor, secret, now, how="holder_departed")
        if agent.status == AgentStatus.REVOKED:
            agent.owners.remove(membership)
            continue
        owned = agent.owners.exclude(pk=membership.pk).filter(status__in=ACTING_STATUSES).exists()
        is_owner = agent.owners.filter(pk=membership.pk).exists()
        if owned:
            if is_owner:
                agent_owner_replace(agent=agent, leaving=membership, actor=actor)
        elif fallback is not None:
            agent_owner_replace(agent=agent, leaving=membership, actor=actor, successor=fallback)
            reassigned += 1
        else:
            if is_owner:
                agent_owner_replace(agent=agent, leaving=membership, actor=actor)
            agent_suspend_orphaned(agent=agent, actor=actor)
            suspended += 1
    return reassigned, suspended


def agents_on_departure(*, membership: Membership, actor: Actor) -> dict[str, int]:
    """The departure handler (accounts.departures) for agents."""
    reassigned, suspended = agents_release_owner(membership=membership, actor=actor)
    return {"agents_reassigned": reassigned, "agents_suspended": suspended}


@transaction.atomic
def agent_revoke(*, agent: Agent, actor: Actor) -> Agent:
    """Revoke the agent and everything issued under it: secrets, tokens, runs. Final."""
    agent = Agent.objects.for_org(agent.org_id).select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.REVOKED:
        return agent
    now = timezone.now()
    agent.status, agent.revoked_at = AgentStatus.REVOKED, now
    agent.save(update_fields=["status", "revoked_at"])
    agent.secrets.filter(revoked_at__isnull=True).update(revoked_at=now)
    revocation.cut_off("agent", agent.subject)
    ended = runs_end_for_agent(agent=agent, actor=actor, reason="agent_revoked")
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_REVOKED, target=Target.of(agent),
                 data={"runs_cancelled": ended})
    return agent


@transaction.atomic
def token_revoke(*, agent, claims: dict) -> None:
    """An agent revokes one of its own tokens (RFC 7009): it fails its next verification."""
    revocation.revoke_jti(claims["jti"], claims["exp"], org=agent.org)
    audit_record(org=agent.org, actor=Actor.for_agent(agent), event=AuditEvent.TOKEN_REVOKED,
                 target=Target("agent", str(agent.pk)), data={"jti": claims["jti"]})


@records_denials
@transaction.atomic
def connection_create(*, org, name: str, audience: str, scopes, actor: Actor,
                      created_by=None) -> tuple[Connection, str]:
    """Register a downstream service; returns it with its introspection secret (shown once)."""
    scopes = sorted(set(scopes))
    if Connection.objects.for_org(org).filter(audience=audience).exists():
        raise Conflict("A connection with this audience exists.", code="duplicate",
                       fields={"audience": ["Already registered."]})
    if Connection.objects.for_org(org).filter(name=name).exists():
        raise Conflict("A connection with this name exists.", code="duplicate", fields={"name": ["Taken."]})
    fields, display = Connection.mint()
    connection = Connection.objects.create(org=org, name=name, audience=audience, scopes=scopes,
                                           client_id=new_client_id("cnc"), created_by=created_by, **fields)
    audit_record(org=org, actor=actor, event=AuditEvent.CONNECTION_CREATED, target=Target.of(connection),
                 data={"name": name, "audience": audience, "scopes": scopes})
    return connection, display


def _connection_locked(connection: Connection) -> Connection:
    """The connection's row, locked until the transaction ends: grants are checked against
    connections under the same lock (grant_shape), so no grant can take up what is being removed."""
    return Connection.objects.for_org(connection.org_id).select_for_update().get(pk=connection.pk)


def _scopes_still_offered(connection: Connection, agent: Agent, scopes: set) -> set:
    """What of `scopes` the agent's other connections offer."""
    others = (Connection.objects.for_org(connection.org_id).filter(audience__in=agent.audiences)
              .exclude(pk=connection.pk).values_list("scopes", flat=True))
    return scopes & set().union(*others)


def _assert_scopes_unused(connection: Connection, removed: set) -> None:
    """A scope may leave a connection only if no agent's grant would be left holding it with no
    connection of the agent offering it. Grants are never narrowed behind their owners' backs."""
    stranded = []
    for agent in connection_agents(connection):
        lost = (set(agent.scopes) & removed) - _scopes_still_offered(connection, agent, removed)
        stranded += [f"{agent.name} holds {s}." for s in sorted(lost)]
    if stranded:
        raise Conflict("Agents' grants use a scope you are removing; take it out of their grants first.",
                       code="scope_in_use", fields={"scopes": stranded})


@records_denials
@transaction.atomic
def connection_update(*, connection: Connection, actor: Actor, name: str | None = None,
                      scopes=None, min_trust: int | None = None) -> Connection:
    """Rename a connection, change the scopes it accepts or the trust score an agent needs for it
    (`min_trust`, 0-100, checked at dispatch and at every token issuance for it). Its audience is
    what it is (register a new connection for another one); a scope some agent's grant relies on
    cannot be removed."""
    connection = _connection_locked(connection)
    previous = (connection.name, list(connection.scopes), connection.min_trust)
    name = connection.name if name is None else name
    scopes = previous[1] if scopes is None else sorted(set(scopes))
    min_trust = previous[2] if min_trust is None else min_trust
    if isinstance(min_trust, bool) or not isinstance(min_trust, int) or not 0 <= min_trust <= 100:
        raise Invalid("A score from 0 to 100.", fields={"min_trust": ["A score from 0 to 100."]})
    if (name, scopes, min_trust) == previous:
        return connection
    if name != previous[0] and Connection.objects.for_org(connection.org_id).filter(name=name).exists():
        raise Conflict("A connection with this name exists.", code="duplicate", fields={"name": ["Taken."]})
    _assert_scopes_unused(connection, set(previous[1]) - set(scopes))
    connection.name, connection.scopes, connection.min_trust = name, scopes, min_trust
    connection.save(update_fields=["name", "scopes", "min_trust"])
    introspection.connection_record_forget(connection.org.slug, connection.client_id)
    data = {"name": name, "previous_name": previous[0], "scopes": scopes, "previous_scopes": previous[1]}
    if min_trust != previous[2]:
        data.update(min_trust=min_trust, previous_min_trust=previous[2])
    audit_record(org=connection.org, actor=actor, event=AuditEvent.CONNECTION_UPDATED,
                 target=Target.of(connection), data=data)
    return connection


@records_denials
@transaction.atomic
def connection_secret_rotate(*, connection: Connection, actor: Actor) -> tuple[Connection, str]:
    """A new introspection secret (returned once); the previous one stops working at once, on the
    very next request (the fast store's record of it is forgotten in this step)."""
    connection = _connection_locked(connection)
    previous = connection.lookup_id
    fields, display = Connection.mint()
    for field, value in fields.items():
        setattr(connection, field, value)
    connection.last_used_at = None
    connection.save(update_fields=[*fields, "last_used_at"])
    introspection.connection_record_forget(connection.org.slug, connection.client_id)
    audit_record(org=connection.org, actor=actor, event=AuditEvent.CONNECTION_SECRET_ROTATED,
                 target=Target.of(connection),
                 data={"lookup_id": connection.lookup_id, "previous_lookup_id": previous})
    return connection, display


@records_denials
@transaction.atomic
def connection_delete(*, connection: Connection, actor: Actor) -> None:
    """Remove a downstream service: its secret stops at once and its audience is refused at the
    token endpoint. Refused while any agent's grant names it (narrow those grants first)."""
    connection = _connection_locked(connection)
    holders = connection_agents(connection)
    if holders:
        raise Conflict(
            f"{len(holders)} agent(s) have this connection's audience in their grant; take it out of "
            "their grants first.", code="connection_in_use",
            fields={"agents": [a.name for a in holders]})
    org, target = connection.org, Target.of(connection)
    data = {"name": connection.name, "audience": connection.audience}
    client_id = connection.client_id
    connection.delete()
    introspection.connection_record_forget(org.slug, client_id)
    audit_record(org=org, actor=actor, event=AuditEvent.CONNECTION_DELETED, target=target, data=data)


def agent_delegable_now(agent) -> set[str]:
    """The agent's scopes its owners can still hand out (for pages and the access review)."""
    return delegable_scopes(agent.scopes, owners_permissions(agent.pk))


@records_denials
@transaction.atomic
def agent_delegates_set(*, agent: Agent, targets, actor: Actor) -> Agent:
    """Set the agents this one may name in `may_act` (who may exchange the tokens it hands on).
    Every target is another agent of the same org; nobody may act as itself."""
    assert_same_org(agent.org, *targets, audit=cross_tenant(agent.org, actor))
    if any(t.pk == agent.pk for t in targets):
        raise Invalid("An agent cannot delegate to itself.", fields={"may_delegate_to": ["Not itself."]})
    previous = sorted(agent.may_delegate_to.values_list("client_id", flat=True))
    wanted = sorted(t.client_id for t in targets)
    if wanted == previous:
        return agent
    agent.may_delegate_to.set(targets)
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_DELEGATES_CHANGED,
                 target=Target.of(agent),
                 data={"may_delegate_to": wanted, "previous": previous})
    return agent


MAX_APPROVED_VERSIONS = 100
MAX_NETWORKS = 50


def _versions_shape(versions) -> list[str]:
    if not isinstance(versions, list) or len(versions) > MAX_APPROVED_VERSIONS or not all(
            isinstance(v, str) and 0 < len(v) <= 64 and "\x00" not in v for v in versions):
        message = f"A list of at most {MAX_APPROVED_VERSIONS} versions (text, 1 to 64 characters each)."
        raise Invalid(message, fields={"approved_versions": [message]})
    return sorted(set(versions))


def _networks_shape(networks) -> list[str]:
    """CIDRs as the scorer compares them: host bits dropped (10.0.0.5/24 is 10.0.0.0/24)."""
    if not isinstance(networks, list) or len(networks) > MAX_NETWORKS:
        message = f"A list of at most {MAX_NETWORKS} networks in CIDR notation."
        raise Invalid(message, fields={"networks": [message]})
    shaped, bad = set(), []
    for value in networks:
        try:
            if not isinstance(value, str):  # ip_network reads a bare integer as an address
                raise TypeError
            shaped.add(str(ipaddress.ip_network(value, strict=False)))
        except (ValueError, TypeError):
            bad.append(f"{str(value)[:60]!r} is not a network (CIDR notation, e.g. 10.0.0.0/8).")
    if bad:
        raise Invalid("Invalid network.", fields={"networks": bad})
    return sorted(shaped)


@records_denials
@transaction.atomic
def agent_trust_inputs_set(*, agent: Agent, actor: Actor, approved_versions=None, networks=None) -> Agent:
    """What its owners expect of the agent, read by its trust score: the versions they approved (a
    version reported outside the list counts against compliance; an empty list approves any) and
    the networks its tokens are expected from."""
    changes = {}
    if approved_versions is not None:
        changes["approved_versions"] = _versions_shape(approved_versions)
    if networks is not None:
        changes["networks"] = _networks_shape(networks)
    previous = {name: list(getattr(agent, name)) for name in changes}
    if all(previous[name] == value for name, value in changes.items()):
        return agent
    for name, value in changes.items():
        setattr(agent, name, value)
    agent.save(update_fields=sorted(changes))
    audit_record(org=agent.org, actor=actor, event=AuditEvent.AGENT_TRUST_INPUTS_CHANGED,
                 target=Target.of(agent),
                 data={**changes, **{f"previous_{name}": value for name, value in previous.items()}})
    return agent
