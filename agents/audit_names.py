"""How the audit log names agents, connections, runs, delegations and agent secrets (audit.naming)."""

from django.urls import reverse
from django.utils.http import urlencode

from agents.models import Agent, AgentSecret, Connection, Delegation, Run
from audit.naming import Namer, uuid_ids


def _url(name, org, pk) -> str:
    return reverse(f"agents:{name}", kwargs={"org": org.slug, "pk": pk})


def agent_names(org, ids):
    rows = Agent.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"agent {name}", _url("agent-detail", org, pk)) for pk, name in rows}


def connection_names(org, ids):
    """An agent connection (a downstream service). SSO connections share the kind; sso names those."""
    rows = Connection.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"connection {name}", _url("connection-detail", org, pk)) for pk, name in rows}


def run_names(org, ids):
    rows = (Run.objects.for_org(org).filter(pk__in=uuid_ids(ids))
            .values_list("pk", "agent__name", "description"))
    return {str(pk): (f"run of {agent}" + (f": {description}" if description else ""),
                      _url("run-detail", org, pk)) for pk, agent, description in rows}


def delegation_names(org, ids):
    rows = (Delegation.objects.for_org(org).filter(pk__in=uuid_ids(ids))
            .values_list("pk", "agent__name", "person_email"))
    base = reverse("agents:delegations", kwargs={"org": org.slug})
    return {str(pk): (f"delegation of {agent} by {email}", f"{base}?{urlencode({'q': email})}")
            for pk, agent, email in rows}


def secret_names(org, ids):
    rows = (AgentSecret.objects.for_org(org).filter(pk__in=uuid_ids(ids))
            .values_list("pk", "agent_id", "agent__name", "lookup_id"))
    return {str(pk): (f"secret {lookup} of {name}", _url("agent-detail", org, agent))
            for pk, agent, name, lookup in rows}


NAMERS = (
    Namer("agent", agent_names),
    Namer("connection", connection_names),
    Namer("run", run_names),
    Namer("delegation", delegation_names),
    Namer("agentsecret", secret_names),
)
