from django.core.management.base import BaseCommand, CommandError

from audit.models import PLATFORM_CHAIN
from audit.selectors import audit_chains, audit_verify_chain
from core.models import Organization


class Command(BaseCommand):
    help = "Walk the audit hash chain(s). Exit 0 when intact, 1 naming the first bad entry."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="verify only this organization's chain (its slug)")

    def handle(self, *args, **opts):
        names = {str(pk): slug for pk, slug in Organization.objects.values_list("pk", "slug")}
        if opts["org"]:
            org = Organization.objects.filter(slug=opts["org"]).first()
            if org is None:
                raise CommandError(f"no organization with slug {opts['org']!r}")
            chains = [str(org.pk)]
        else:
            chains = audit_chains()
        broken = 0
        for chain in chains:
            verdict = audit_verify_chain(chain=chain)
            label = "platform" if chain == PLATFORM_CHAIN else f"org {names.get(chain, chain)}"
            if verdict.ok:
                self.stdout.write(f"{label}: ok ({verdict.checked} entries)")
                continue
            broken += 1
            self.stdout.write(
                f"{label}: BROKEN at seq {verdict.first_bad_seq} (entry id {verdict.first_bad_id}): "
                f"{verdict.reason}"
            )
        if broken:
            raise CommandError(f"{broken} audit chain(s) failed verification", returncode=1)
