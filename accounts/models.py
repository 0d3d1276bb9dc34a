import unicodedata
import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_otp.models import Device

from core.credentials import Credential
from core.permissions import perms_from_strings
from core.roles import BuiltinRole
from core.secrets import secret_matches
from core.tenancy import OrgScopedModel, org_scoped_manager


def normalize_email(email: str) -> str:
    """The one spelling of an address: NFKC-normalised, trimmed, lower-cased.

    Stored this way, a plain unique index makes addresses unique case-insensitively on every
    database (SQLite's lower() folds ASCII only, so a functional index would not).
    """
    return unicodedata.normalize("NFKC", email or "").strip().lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields):
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)  # None gives an unusable password (SSO/SCIM-only users)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields):
        # Platform staff; tenant power always comes from a Membership, never from this flag.
        return self.create_user(email, password, is_staff=True, **fields)


class User(AbstractBaseUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True, max_length=254)
    display_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    password_changed_at = models.DateTimeField(null=True, blank=True)
    # The org whose SCIM created this account. Only that org's IdP may set its password, and only
    # while the account belongs to no other org: an IdP asserts addresses nobody has verified, so
    # when another org adds the account its password is cleared (accounts.services.account_claim).
    scim_managed_by = models.ForeignKey("core.Organization", null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")), name="user_email_is_normalized"
            )
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def name(self) -> str:
        return self.display_name or self.email

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)


class MembershipStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INVITED = "invited", "Invited"
    SUSPENDED = "suspended", "Suspended"
    DEPROVISIONED = "deprovisioned", "Deprovisioned"


class MembershipSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    SSO = "sso", "Single sign-on"
    SCIM = "scim", "SCIM"


# Statuses that let a member act in the org. An invited member has not accepted yet: until they do,
# the membership grants nothing, applies none of the org's policy and cannot end their sessions.
ACTING_STATUSES = (MembershipStatus.ACTIVE,)


class Membership(OrgScopedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=BuiltinRole.choices, default=BuiltinRole.MEMBER)
    status = models.CharField(
        max_length=20, choices=MembershipStatus.choices, default=MembershipStatus.ACTIVE
    )
    source = models.CharField(
        max_length=10, choices=MembershipSource.choices, default=MembershipSource.MANUAL
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The org's directory (its IdP, over SCIM) has switched this person off. It is the source of
    # truth for them: an admin lifting a suspension cannot bring them back; the directory must.
    deactivated_by_directory = models.BooleanField(default=False)
    # An admin ended the member's sessions' access to this org: a session whose last proof of
    # identity is older works here again only after the person proves it anew (accounts.policy).
    sessions_not_before = models.DateTimeField(null=True, blank=True)
    # custom_roles: reverse of rbac.Role.members (rbac depends on accounts, never the reverse).

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "user"], name="membership_unique_user_per_org")
        ]
        indexes = [models.Index(fields=["org", "role", "status"])]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.org_id}"

    @property
    def can_act(self) -> bool:
        return self.status in ACTING_STATUSES


class ApiKey(OrgScopedModel, Credential):
    """An org API key: a non-human principal holding exactly its declared permissions."""

    PREFIX = "iamk"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    permissions = models.JSONField(default=list)

    class Meta:
        indexes = [models.Index(fields=["org", "created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def perms(self):
        return perms_from_strings(self.permissions)


LOCKOUT_THRESHOLD_MIN = 3
LOCKOUT_MINUTES_MAX = 60


class SecurityPolicy(models.Model):
    """An org's authentication policy. Enforced at login and on every request to the org.

    Other apps keep their own org settings in rows of their own (agents.AgentPolicy); the security
    page and API show them together (web.policy)."""

    org = models.OneToOneField(
        "core.Organization", primary_key=True, on_delete=models.CASCADE, related_name="security_policy"
    )
    session_absolute_minutes = models.PositiveIntegerField(
        default=12 * 60, validators=[MinValueValidator(5), MaxValueValidator(30 * 24 * 60)])
    session_idle_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(5), MaxValueValidator(30 * 24 * 60)])
    password_min_length = models.PositiveSmallIntegerField(
        default=12, validators=[MinValueValidator(8), MaxValueValidator(128)])
    password_require_lower = models.BooleanField(default=False)
    password_require_upper = models.BooleanField(default=False)
    password_require_digit = models.BooleanField(default=False)
    password_require_symbol = models.BooleanField(default=False)
    password_history = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(24)])
    password_max_age_days = models.PositiveIntegerField(  # 0: never expires
        default=0, validators=[MaxValueValidator(3650)])
    mfa_required = models.BooleanField(default=False)
    # Members sign in only through the org's SSO; "owners": owners may still use a password (and
    # their second factor) when the IdP is down.
    sso_required = models.BooleanField(default=False)
    sso_break_glass = models.CharField(
        max_length=10, default="owners",
        choices=[("owners", "Owners may still sign in with a password"), ("none", "Nobody")])
    # Bounded so that no org can turn lockout into a weapon: every org a person belongs to may lock
    # their account, so one wrong guess locking it everywhere for a day is never allowed.
    lockout_threshold = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(LOCKOUT_THRESHOLD_MIN), MaxValueValidator(100)])
    lockout_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(LOCKOUT_MINUTES_MAX)])
    updated_at = models.DateTimeField(default=timezone.now)

    objects = org_scoped_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(password_min_length__gte=8, password_min_length__lte=128),
                name="policy_password_length_range",
            ),
            models.CheckConstraint(condition=models.Q(lockout_threshold__gte=LOCKOUT_THRESHOLD_MIN,
                                                      lockout_threshold__lte=100),
                                   name="policy_lockout_threshold_bounds"),
            models.CheckConstraint(condition=models.Q(lockout_minutes__gte=1,
                                                      lockout_minutes__lte=LOCKOUT_MINUTES_MAX),
                                   name="policy_lockout_minutes_bounds"),
            models.CheckConstraint(condition=models.Q(session_absolute_minutes__gte=5),
                                   name="policy_session_absolute_min"),
            models.CheckConstraint(condition=models.Q(session_idle_minutes__gte=5),
                                   name="policy_session_idle_min"),
        ]


class PasswordHistory(models.Model):
    """Earlier password hashes (Argon2id, like the live one), for the org's no-reuse rule."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_history")
    password = models.CharField(max_length=256)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]


class UserSession(AbstractBaseSession):
    """A server-side session that knows its user, so it can be listed and revoked one by one.

    Django's documented way to extend the database session engine (AbstractBaseSession).
    django-user-sessions does the same but targets Django <= 4, takes the IP from REMOTE_ADDR rather
    than through our trusted proxies, and writes on every request; this model is small enough to own.
    """

    user = models.ForeignKey(User, null=True, on_delete=models.CASCADE, related_name="sessions")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-last_seen_at"])]


class Invitation(OrgScopedModel):
    """The emailed, single-use link with which a person accepts a membership (Membership status
    `invited`). Only the SHA-256 of the link's 32 random bytes is stored, as for reset links. A
    resend replaces the secret; validity is decided by timestamps, whether or not cleanup runs."""

    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="invitation")
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    sent_count = models.PositiveSmallIntegerField(default=1)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invitation:{self.membership_id}"


class PasswordResetToken(models.Model):
    """One emailed reset link. Only the SHA-256 of its 32 random bytes is stored: the secret is
    high-entropy, so a fast hash cannot be brute-forced, and a leaked table yields no usable link.
    Validity is decided by timestamps (`expires_at`, `used_at`), whether or not any cleanup has run.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_reset_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]


class WebAuthnCredential(Device):
    """A passkey (WebAuthn public-key credential) used as a second factor.

    A django-otp Device, so `user_has_device` counts it and a password login for its owner goes to
    the second-factor step. It is verified by a signed assertion (accounts.passkeys), never a code:
    the inherited `verify_token` stays False. Only the public key is stored; `sign_count` is the
    authenticator's counter, kept so a cloned authenticator replaying an older count is refused.
    """

    credential_id = models.CharField(max_length=1400, unique=True)  # base64url, at most 1023 bytes
    public_key = models.BinaryField()  # COSE_Key, as registered
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    aaguid = models.CharField(max_length=36, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "confirmed"])]


class RecoveryCodeDevice(Device):
    """A set of single-use recovery codes, stored as keyed hashes (like every other secret here).

    django-otp's StaticDevice keeps its codes in plain text; these are HMAC-SHA256 under the
    server key (core.secrets), so a copy of the database yields no usable code.
    """

    def verify_token(self, token) -> bool:
        candidate = "".join(ch for ch in str(token).lower() if ch.isalnum())
        for code in self.codes.all():
            if secret_matches(candidate, code.code_hash, code.hash_kid):
                # Deleting by primary key is the race: of two parallel redemptions one deletes it.
                return RecoveryCode.objects.filter(pk=code.pk).delete()[0] == 1
        return False

    @property
    def remaining(self) -> int:
        return self.codes.count()


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    hash_kid = models.CharField(max_length=32)
