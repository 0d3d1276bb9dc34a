import json
import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.api_keys import api_key_mint
from accounts.models import normalize_email
from accounts.services import org_create, password_set, user_get_or_create
from audit.actors import Actor
from core.models import Organization
from core.permissions import ALL_PERMS


class Command(BaseCommand):
    help = "Create an organization and its owner; optionally an owner-level org API key."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password-stdin", action="store_true",
                            help="read the owner's password from the first line of standard input")
        parser.add_argument("--api-key", action="store_true", help="also mint an owner-level API key")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts):
        password = self._password(opts["owner_password_stdin"])
        email = normalize_email(opts["owner_email"])
        if Organization.objects.filter(slug=opts["slug"]).exists():
            raise CommandError(f"an organization with slug {opts['slug']!r} already exists")
        with transaction.atomic():
            owner = user_get_or_create(email=email)
            if password is not None:
                self._validate(password, owner)
                password_set(user=owner, new_password=password, reason="bootstrap_org")
            actor = Actor.system("bootstrap_org")
            org = org_create(slug=opts["slug"], name=opts["name"], owner=owner, actor=actor)
            result = {"org": org.slug, "owner": owner.email}
            if opts["api_key"]:
                # The owner's own level: the key is theirs, and never outlives or out-ranks them.
                _, secret = api_key_mint(org=org, name="bootstrap", perms=ALL_PERMS, actor=actor,
                                         created_by=owner)
                result["api_key"] = secret
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for key, value in result.items():
                self.stdout.write(f"{key}: {value}")

    @staticmethod
    def _password(from_stdin: bool) -> str | None:
        if not from_stdin:
            return None
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CommandError("--owner-password-stdin given but standard input held no password")
        return line

    @staticmethod
    def _validate(password: str, user) -> None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages))
