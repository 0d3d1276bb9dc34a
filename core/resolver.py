"""DNS lookups for checks the product makes itself (domain ownership): one resolver honouring
`IAM_DNS_NAMESERVERS` (`host:port`, the system's when empty), with a bounded lifetime."""

import dns.exception
import dns.resolver
from django.conf import settings

LIFETIME_SECONDS = 5.0


class LookupFailed(Exception):
    pass


def resolver() -> dns.resolver.Resolver:
    nameservers = settings.IAM_DNS_NAMESERVERS
    if not nameservers:
        found = dns.resolver.Resolver()
    else:
        found = dns.resolver.Resolver(configure=False)
        found.nameservers = [ns.rsplit(":", 1)[0] if ns.count(":") == 1 else ns for ns in nameservers]
        first = nameservers[0]
        found.port = int(first.rsplit(":", 1)[1]) if first.count(":") == 1 else 53
    found.lifetime = LIFETIME_SECONDS
    return found


def txt_records(name: str) -> list[str]:
    """The TXT strings at `name` (each record's parts joined), [] when there are none."""
    try:
        answer = resolver().resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise LookupFailed(type(exc).__name__) from exc
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
