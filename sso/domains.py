"""Effects on an org's email domains: claim one (its DNS challenge is shown), verify it by looking
the TXT record up with a real resolver (core.resolver), remove it. Each audits inside its
transaction; a failed verification is audited after the rollback."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.events import AuditEvent
from audit.services import Target, audit_record, records_denials
from core.errors import Conflict, DenialAudit, Invalid, ServiceError
from core.resolver import LookupFailed, txt_records
from sso.models import Domain

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_DOMAINS = 50


class DnsUnavailable(ServiceError):
    status = 503
    code = "dns_unavailable"


def domain_shape(text) -> str:
    """A registrable-looking host name, lower case, IDNA-encoded; else Invalid."""
    message = "A domain name such as example.com."
    if not isinstance(text, str):
        raise Invalid(message, fields={"domain": [message]})
    name = text.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise Invalid(message, fields={"domain": [message]})
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(LABEL.match(label) for label in labels)
        or (labels[-1].isdigit())
    ):
        raise Invalid(message, fields={"domain": [message]})
    return name


@records_denials
@transaction.atomic
def domain_add(*, org, domain: str, actor: Actor, created_by=None) -> Domain:
    name = domain_shape(domain)
    if Domain.objects.for_org(org).filter(domain=name).exists():
        raise Conflict("This domain is already listed.", code="duplicate", fields={"domain": ["Listed."]})
    if Domain.objects.for_org(org).count() >= MAX_DOMAINS:
        raise Conflict(f"At most {MAX_DOMAINS} domains.", code="too_many")
    row = Domain.objects.create(org=org, domain=name, created_by=created_by)
    audit_record(
        org=org,
        actor=actor,
        event=AuditEvent.SSO_DOMAIN_ADDED,
        target=Target("domain", str(row.pk)),
        data={"domain": name},
    )
    return row


def _failed(row: Domain, actor: Actor, reason: str) -> DenialAudit:
    return DenialAudit(
        row.org,
        actor,
        AuditEvent.SSO_DOMAIN_VERIFY_FAILED,
        Target("domain", str(row.pk)),
        {"domain": row.domain, "reason": reason},
    )


@records_denials
def domain_verify(*, domain: Domain, actor: Actor) -> Domain:
    """Look the challenge up now. Verified once the TXT record holds it and no other org holds
    the domain verified; a verified domain stays verified (re-checking changes nothing)."""
    if domain.verified:
        return domain
    try:
        found = txt_records(domain.txt_name)
    except LookupFailed:
        raise DnsUnavailable(
            "The DNS lookup failed; try again shortly.", audit=_failed(domain, actor, "lookup_failed")
        )
    if domain.txt_value not in found:
        raise Conflict(
            f"No TXT record {domain.txt_name} with the value {domain.txt_value} was found.",
            code="domain_not_verified",
            audit=_failed(domain, actor, "record_missing"),
        )
    try:
        with transaction.atomic():
            row = (
                Domain.objects.for_org(domain.org_id)
                .select_for_update()
                .select_related("org")
                .get(pk=domain.pk)
            )
            if row.verified:
                return row
            if (
                Domain.objects.unscoped().filter(domain=row.domain, verified_at__isnull=False).exists()
            ):  # any org
                raise Conflict(
                    "Another organization has verified this domain.",
                    code="domain_claimed",
                    audit=_failed(row, actor, "claimed_elsewhere"),
                )
            row.verified_at = row.last_checked_at = timezone.now()
            row.save(update_fields=["verified_at", "last_checked_at"])
            audit_record(
                org=row.org,
                actor=actor,
                event=AuditEvent.SSO_DOMAIN_VERIFIED,
                target=Target("domain", str(row.pk)),
                data={"domain": row.domain},
            )
            return row
    except IntegrityError:  # verified by another org at the same moment
        raise Conflict(
            "Another organization has verified this domain.",
            code="domain_claimed",
            audit=_failed(domain, actor, "claimed_elsewhere"),
        )


@transaction.atomic
def domain_remove(*, domain: Domain, actor: Actor) -> None:
    audit_record(
        org=domain.org,
        actor=actor,
        event=AuditEvent.SSO_DOMAIN_REMOVED,
        target=Target("domain", str(domain.pk)),
        data={"domain": domain.domain, "verified": domain.verified},
    )
    domain.delete()


def domain_verified_for(org, email: str) -> bool:
    """Whether the address's domain is one this org has verified."""
    domain = email.rpartition("@")[2]
    rows = Domain.objects.for_org(org).filter(domain=domain, verified_at__isnull=False)
    return bool(domain) and rows.exists()


def verified_org_for(email: str):
    """The org that verified the address's domain (home-realm discovery), or None."""
    domain = email.rpartition("@")[2]
    if not domain:
        return None
    row = (Domain.objects.unscoped()  # which org owns a domain is a question across orgs
           .select_related("org").filter(domain=domain, verified_at__isnull=False).first())
    return row.org if row is not None else None
