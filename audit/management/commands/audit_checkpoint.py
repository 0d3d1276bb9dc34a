import json

from django.core.management.base import BaseCommand, CommandError

from audit.actors import Actor
from audit.checkpoints import checkpoint_issue_recorded
from audit.keys import public_jwks
from core.errors import Conflict
from core.models import Organization


class Command(BaseCommand):
    help = ("Print a signed checkpoint of an organization's audit chain head (save it: `audit_verify "
            "--checkpoint` checks the chain against it later), or the public keys that verify checkpoints.")

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--org", help="the organization's slug")
        which.add_argument("--public-keys", action="store_true", help="print the checkpoint keys (JWK Set)")

    def handle(self, *args, **opts):
        if opts["public_keys"]:
            self.stdout.write(json.dumps(public_jwks(), indent=2))
            return
        org = Organization.objects.filter(slug=opts["org"]).first()
        if org is None:
            raise CommandError(f"no organization with slug {opts['org']!r}")
        try:
            checkpoint = checkpoint_issue_recorded(org=org, actor=Actor.system("audit_checkpoint command"))
        except Conflict as refused:
            raise CommandError(refused.detail, returncode=1)
        self.stdout.write(json.dumps(checkpoint, indent=2, sort_keys=True))
