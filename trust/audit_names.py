"""How the audit log names trust roots, dispatch gates and approvals (audit.naming)."""

from django.urls import reverse

from audit.naming import Namer, uuid_ids
from trust.models import Approval, TrustGate, TrustRoot


def root_names(org, ids):
    rows = TrustRoot.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    url = reverse("trust:trust", kwargs={"org": org.slug})
    return {str(pk): (f"trust root {name}", url) for pk, name in rows}


def gate_names(org, ids):
    rows = TrustGate.objects.for_org(org).filter(pk__in=uuid_ids(ids)).values_list("pk", "name")
    return {str(pk): (f"gate {name}", reverse("trust:gate-change", kwargs={"org": org.slug, "pk": pk}))
            for pk, name in rows}


def approval_names(org, ids):
    rows = (Approval.objects.for_org(org).filter(pk__in=uuid_ids(ids))
            .values_list("pk", "agent__name", "operation"))
    return {str(pk): (f"approval for {agent}" + (f" ({op})" if op else ""),
                      reverse("trust:approval-detail", kwargs={"org": org.slug, "pk": pk}))
            for pk, agent, op in rows}


NAMERS = (
    Namer("trustroot", root_names),
    Namer("trust_gate", gate_names),
    Namer("trustgate", gate_names),
    Namer("approval", approval_names),
)
