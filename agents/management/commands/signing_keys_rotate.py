from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from agents.keys import caches_clear, signing_key_rotate
from agents.policy import agent_policy_for_org
from core.models import Organization


class Command(BaseCommand):
    help = ("Publish a new token-signing key for an org (or every org). It signs after the publish lead "
            "(IAM_SIGNING_KEY_PUBLISH_LEAD_SECONDS); the old key stays published until its tokens expire.")

    def add_arguments(self, parser):
        parser.add_argument("--org", help="only this organization (its slug)")
        parser.add_argument("--now", action="store_true",
                            help="start signing at once (an emergency: caches that lack the key will refuse)")

    def handle(self, *args, **opts):
        orgs = Organization.objects.all()
        if opts["org"]:
            orgs = orgs.filter(slug=opts["org"])
            if not orgs.exists():
                raise CommandError(f"no organization with slug {opts['org']!r}")
        for org in orgs:
            lead = timedelta(0) if opts["now"] else None
            key = signing_key_rotate(org=org, alg=agent_policy_for_org(org).token_alg, lead=lead)
            when = f"{key.activates_at:%Y-%m-%d %H:%M:%S}Z"
            self.stdout.write(f"{org.slug}: new key {key.kid} ({key.alg}) signs from {when}")
        caches_clear()
