"""Human password hashing: Argon2id at OWASP's minimum cost (19 MiB, 2 passes, 1 lane).

Django's own Argon2 defaults (100 MiB, 8 lanes) cost about 200 ms per login on our hardware; this
is ~30 ms and still within OWASP's recommendation. Changing these numbers makes Django rehash each
password on the user's next successful login.
"""

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password
from django.core.exceptions import ValidationError

from accounts.policy import missing_classes, user_policy

PASSWORD_MAX_LENGTH = 1024


class IamArgon2Hasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1


class PolicyPasswordValidator:
    """The org policies' password rules (strictest across the user's orgs), as a Django validator.

    Each failure carries a reason code (`code`), so the API and the pages can say exactly why.
    """

    def validate(self, password, user=None):
        policy = user_policy(user)
        errors = []
        if len(password) < policy.min_length:
            errors.append(ValidationError(
                f"Use at least {policy.min_length} characters.", code="password_too_short"))
        if len(password) > PASSWORD_MAX_LENGTH:
            errors.append(ValidationError("That password is too long.", code="password_too_long"))
        for missing in missing_classes(password, policy.classes):
            errors.append(ValidationError(f"Include {missing}.", code="password_missing_class"))
        folded = _letters_and_digits(password)
        if any(len(name) >= 3 and name in folded for name in map(_letters_and_digits, policy.org_names)):
            errors.append(ValidationError("Do not use your organization's name.",
                                          code="password_contains_org_name"))
        if user is not None and policy.history and _recently_used(user, password, policy.history):
            errors.append(ValidationError(
                f"Choose a password you have not used for your last {policy.history} changes.",
                code="password_reused"))
        if errors:
            raise ValidationError(errors)

    def get_help_text(self) -> str:
        return "Your organizations' security policies set the length and character rules."


def _letters_and_digits(text: str) -> str:
    # "Initech Systems" is in "initech-systems-2026!" once case and punctuation are set aside.
    return "".join(c for c in text.casefold() if c.isalnum())


def _recently_used(user, password: str, depth: int) -> bool:
    if user.pk and user.check_password(password):
        return True
    previous = user.password_history.order_by("-created_at").values_list("password", flat=True)
    return any(check_password(password, encoded) for encoded in previous[: max(depth - 1, 0)])


# Accounts created without any address (SCIM users an IdP sent no email for) get one in this
# reserved domain (RFC 2606): it reaches nobody and can only sign in by single sign-on.
PLACEHOLDER_EMAIL_DOMAIN = "users.invalid"


class UserAttributeSimilarityValidator(password_validation.UserAttributeSimilarityValidator):
    """Django's, minus placeholder addresses: a random id the person never saw is not something a
    password can be "too similar" to (random hex strings look alike to its character-count test)."""

    def validate(self, password, user=None):
        if user is not None and str(getattr(user, "email", "")).endswith("@" + PLACEHOLDER_EMAIL_DOMAIN):
            return
        super().validate(password, user)
