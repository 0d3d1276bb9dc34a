import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.checkpoints import audit_verify_checkpoint
from audit.models import PLATFORM_CHAIN
from audit.selectors import audit_chains, audit_verify_chain
from core.models import Organization


class Command(BaseCommand):
    help = ("Walk the audit hash chain(s). Exit 0 when intact, 1 naming the first bad entry. With "
            "--checkpoint, the org's chain must also still hold the entry that checkpoint attested.")

    def add_arguments(self, parser):
        parser.add_argument("--org", help="verify only this organization's chain (its slug)")
        parser.add_argument("--checkpoint", metavar="FILE",
                            help="a checkpoint saved from audit_checkpoint or the API ('-' reads stdin); "
                                 "needs --org")

    def handle(self, *args, **opts):
        names = {str(pk): slug for pk, slug in Organization.objects.values_list("pk", "slug")}
        org = None
        if opts["org"]:
            org = Organization.objects.filter(slug=opts["org"]).first()
            if org is None:
                raise CommandError(f"no organization with slug {opts['org']!r}")
        suffix = ""
        if opts["checkpoint"]:
            if org is None:
                raise CommandError("--checkpoint needs --org")
            checkpoint = _read_checkpoint(opts["checkpoint"])
            verdicts = [audit_verify_checkpoint(org=org, checkpoint=checkpoint)]
            suffix = f", the checkpoint at seq {checkpoint.get('seq')} among them"
        else:
            chains = [str(org.pk)] if org else audit_chains()
            verdicts = [audit_verify_chain(chain=chain) for chain in chains]
        broken = 0
        for verdict in verdicts:
            chain = verdict.chain
            label = "platform" if chain == PLATFORM_CHAIN else f"org {names.get(chain, chain)}"
            if verdict.ok:
                self.stdout.write(f"{label}: ok ({verdict.checked} entries{suffix})")
                continue
            broken += 1
            where = "" if verdict.first_bad_seq is None else \
                f" at seq {verdict.first_bad_seq} (entry id {verdict.first_bad_id})"
            self.stdout.write(f"{label}: BROKEN{where}: {verdict.reason}")
        if broken:
            raise CommandError(f"{broken} audit chain(s) failed verification", returncode=1)


def _read_checkpoint(path: str):
    try:
        return json.loads(sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read the checkpoint {path}: {exc}", returncode=1)
