"""How the audit log names SSO connections and domains (audit.naming)."""

from django.urls import reverse

from audit.naming import Namer, uuid_ids
from sso.models import Connection, Domain


def connection_names(org, ids):
    """An SSO connection. Agent connections share the kind ("connection"); agents names those."""
    rows = Connection.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"SSO connection {name}",
                      reverse("sso:connection-detail", kwargs={"org": org.slug, "pk": pk}))
            for pk, name in rows}


def domain_names(org, ids):
    rows = Domain.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "domain")
    url = reverse("sso:domains", kwargs={"org": org.slug})
    return {str(pk): (f"domain {name}", url) for pk, name in rows}


NAMERS = (Namer("connection", connection_names), Namer("domain", domain_names))
