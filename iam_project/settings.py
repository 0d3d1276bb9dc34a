"""Settings, driven by environment variables.

With no environment at all this is the embedded development default: SQLite, local-memory cache,
Celery eager, a secret key generated once into `.local/` (ignored by git). Setting `DATABASE_URL`,
`REDIS_URL` and `CELERY_BROKER_URL` switches the same code to PostgreSQL, Redis and a real worker.
With `DJANGO_DEBUG=0` (production) a missing secret or allowed host stops start-up.
"""

import base64
import ipaddress
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    return [item.strip() for item in (env(name) or "").split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
TESTING = env_bool("IAM_TESTING", False)


def _development_secrets() -> dict[str, str]:
    """Generate the development secrets once and keep them in an ignored local file."""
    path = BASE_DIR / ".local" / "dev-secrets.json"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    values = json.loads(path.read_text()) if path.exists() else {}
    for name, make in (
        ("secret_key", lambda: secrets.token_urlsafe(50)),
        ("hmac_key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()),
        ("encryption_key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()),
    ):
        values.setdefault(name, make())
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def _required(name: str, purpose: str) -> str:
    value = env(name)
    if value is None:
        raise ImproperlyConfigured(
            f"{name} is not set. {purpose} It is required when DJANGO_DEBUG is off (production)."
        )
    return value


if DEBUG:
    _dev = _development_secrets()
    SECRET_KEY = env("DJANGO_SECRET_KEY", _dev["secret_key"])
    _hmac_spec = env("IAM_HMAC_KEYS", f"dev:{_dev['hmac_key']}")
    _encryption_spec = env("IAM_ENCRYPTION_KEYS", f"dev:{_dev['encryption_key']}")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or ["127.0.0.1", "localhost", "[::1]"]
else:
    SECRET_KEY = _required("DJANGO_SECRET_KEY", "It signs sessions and CSRF tokens.")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 characters long.")
    _hmac_spec = _required(
        "IAM_HMAC_KEYS",
        "It keys the hashes of API keys and agent secrets ('kid:base64key[,kid:oldkey...]').",
    )
    _encryption_spec = _required(
        "IAM_ENCRYPTION_KEYS",
        "It encrypts signing keys and IdP secrets at rest, AES-256-GCM ('kid:base64key[,...]').",
    )
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS is not set. List the host names this server answers to, "
            "comma-separated. It is required when DJANGO_DEBUG is off (production)."
        )


def _parse_keys(spec: str, name: str) -> dict[str, bytes]:
    """`kid:base64url-key,...`; the first key is current, the rest still read older data."""
    keys: dict[str, bytes] = {}
    for item in spec.split(","):
        kid, _, encoded = item.strip().partition(":")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            key = b""
        if not kid or len(key) < 32:
            raise ImproperlyConfigured(
                f"{name} entries must look like 'kid:<base64url of at least 32 bytes>'."
            )
        keys[kid] = key
    return keys


IAM_HMAC_KEYS = _parse_keys(_hmac_spec, "IAM_HMAC_KEYS")
IAM_HMAC_CURRENT_KID = next(iter(IAM_HMAC_KEYS))
# AES-256 takes exactly 32 bytes; longer keys are cut to that length.
IAM_ENCRYPTION_KEYS = {
    kid: key[:32] for kid, key in _parse_keys(_encryption_spec, "IAM_ENCRYPTION_KEYS").items()
}
IAM_ENCRYPTION_CURRENT_KID = next(iter(IAM_ENCRYPTION_KEYS))
# The audit chain's keys, same format: audit/keys.py derives from each a MAC key for entries and an
# Ed25519 key for checkpoints. The first keys new entries; keep every kid that keyed an entry. Unset,
# it is the IAM_HMAC_KEYS ring (the derived keys differ from the credential hashes' own).
IAM_AUDIT_KEYS = _parse_keys(env("IAM_AUDIT_KEYS", _hmac_spec), "IAM_AUDIT_KEYS")
# A verification from the API or a page re-checks this many entries below its last mark
# (audit/verification.py) and records `audit.verified` for an actor at most once per this many seconds
# while the verdict stays the same.
IAM_AUDIT_VERIFY_RECHECK = int(env("IAM_AUDIT_VERIFY_RECHECK", "10000"))
IAM_AUDIT_VERIFY_RECORD_SECONDS = int(env("IAM_AUDIT_VERIFY_RECORD_SECONDS", "3600"))

# Outbound requests to URLs from IdPs or admins (core.outbound): CIDRs reachable although private or
# loopback (an IdP on the company network, the test suite's local peers), and DNS servers to ask
# (`host:port`, the system resolver when empty).
IAM_OUTBOUND_ALLOW_NETWORKS = env_list("IAM_OUTBOUND_ALLOW_NETWORKS")
IAM_DNS_NAMESERVERS = env_list("IAM_DNS_NAMESERVERS")
IAM_SSO_START_IP_LIMIT = int(env("IAM_SSO_START_IP_LIMIT", "60"))  # SSO sign-ins started per IP a minute
IAM_SSO_FLOW_SECONDS = 600  # an SSO sign-in (state, nonce, AuthnRequest) must finish within this

# The origin used to build links in mails and metadata (OAuth issuer, SCIM base URL, reset links);
# never taken from request headers. `make run` sets it to where it serves (http://$(HOST)).
IAM_CANONICAL_ORIGIN = env("IAM_CANONICAL_ORIGIN", "http://127.0.0.1:8000").rstrip("/")
_ORIGIN_HOST = urlparse(IAM_CANONICAL_ORIGIN).hostname or ""


def _loopback_twin(origin: str) -> str | None:
    """localhost and 127.0.0.1 on one port are one development server."""
    parts = urlparse(origin)
    twin = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}.get(parts.hostname or "")
    if twin is None:
        return None
    return f"{parts.scheme}://{twin}" + (f":{parts.port}" if parts.port else "")


# Other origins this server answers as. The OAuth metadata and tokens name the one the client used,
# and tokens of any are accepted; links in mails always use the canonical origin. In development
# the loopback twin of the canonical origin (so `make run`, printing localhost for passkeys, still
# serves the documented http://127.0.0.1:8000 exactly); in production none unless set.
IAM_ORIGIN_ALIASES = [o.rstrip("/") for o in env_list("IAM_ORIGIN_ALIASES")] or (
    [_loopback_twin(IAM_CANONICAL_ORIGIN)] if DEBUG and _loopback_twin(IAM_CANONICAL_ORIGIN) else [])
if DEBUG and not env_list("DJANGO_ALLOWED_HOSTS"):
    # Development answers on loopback and on whatever host name the origin says it is served as.
    _served_as = f"[{_ORIGIN_HOST}]" if ":" in _ORIGIN_HOST else _ORIGIN_HOST
    if _served_as and _served_as not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_served_as)

# Client IPs are read from X-Forwarded-For only when the direct peer is one of these networks.
IAM_TRUSTED_PROXIES = [ipaddress.ip_network(n, strict=False) for n in env_list("IAM_TRUSTED_PROXIES")]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "core",
    "accounts",
    "rbac",
    "audit",
    "agents",
    "trust",
    "sso",
    "scim",
    "web",
    "iam_project",
]

MIDDLEWARE = [
    "core.tenancy.TenancyScopeMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.SessionActivityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A view that loses the database answers 503 with Retry-After in its surface's format.
    "web.outage.DatabaseOutageMiddleware",
]

ROOT_URLCONF = "iam_project.urls"
WSGI_APPLICATION = "iam_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.pending_invitations",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_database_url = env("DATABASE_URL")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    # Off by default: the check is a `SELECT 1` round trip at the start of every request, a fifth of
    # an introspection. Without it a worker's first request after the database restarts fails once
    # (its broken connection is then discarded); turn it on where that matters more than latency.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("IAM_DB_HEALTH_CHECKS", False)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # psycopg prepares a statement on the server after it has run this many times, so the hot
        # paths (token grant, introspection, audit append) stop paying for planning on every call.
        # Set IAM_DB_PREPARE_THRESHOLD=off behind a transaction-pooling PgBouncer older than 1.21.
        _prepare = env("IAM_DB_PREPARE_THRESHOLD", "5")
        if _prepare != "off":
            # Preparing needs server-side parameter binding (Django's default binds on the client).
            DATABASES["default"].setdefault("OPTIONS", {}).update(
                server_side_binding=True, prepare_threshold=int(_prepare))
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            # IMMEDIATE takes the write lock at BEGIN, so two writers never read the same
            # audit chain head and then race to extend it.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("IAM_CACHE_PREFIX", "iam"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

# --- Authentication -------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
PASSWORD_HASHERS = ["accounts.passwords.IamArgon2Hasher"]
AUTH_PASSWORD_VALIDATORS = [
    # Length, character classes, org name and history come from the org policies (strictest).
    {"NAME": "accounts.passwords.PolicyPasswordValidator"},
    # Django's list of 20,000 common passwords (covers every top-3000 list).
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "accounts.passwords.UserAttributeSimilarityValidator"},
]

SESSION_ENGINE = "accounts.sessions"
# Login defences. Per-account thresholds come from each org's security policy; these are global.
IAM_LOGIN_IP_LIMIT = int(env("IAM_LOGIN_IP_LIMIT", "30"))  # failed attempts per IP per window
IAM_LOGIN_IP_WINDOW_SECONDS = int(env("IAM_LOGIN_IP_WINDOW_SECONDS", "600"))
IAM_LOGIN_BACKOFF_BASE_SECONDS = float(env("IAM_LOGIN_BACKOFF_BASE_SECONDS", "1"))
IAM_REAUTH_WINDOW_SECONDS = int(env("IAM_REAUTH_WINDOW_SECONDS", "600"))
IAM_MFA_PENDING_SECONDS = 300  # how long a password-verified login may wait for its second factor
# WebAuthn relying party: the host name passkeys are bound to, and the exact origin pages are served
# from. Both default to the canonical origin. An IP address cannot be an RP ID (browsers refuse it),
# which is why `make run` serves http://localhost:8000 rather than http://127.0.0.1:8000.
IAM_WEBAUTHN_RP_ID = env("IAM_WEBAUTHN_RP_ID", _ORIGIN_HOST)
IAM_WEBAUTHN_ORIGIN = env("IAM_WEBAUTHN_ORIGIN", IAM_CANONICAL_ORIGIN)
OTP_TOTP_ISSUER = env("IAM_TOTP_ISSUER", "Agent IAM")
# Agent tokens. A new signing key is published this long before it signs (resource servers cache
# the JWKS); keys older than the rotation age are rotated by the beat task.
IAM_SIGNING_KEY_PUBLISH_LEAD_SECONDS = int(env("IAM_SIGNING_KEY_PUBLISH_LEAD_SECONDS", "3600"))
IAM_SIGNING_KEY_ROTATE_DAYS = int(env("IAM_SIGNING_KEY_ROTATE_DAYS", "30"))
IAM_TOKEN_CLIENT_LIMIT = int(env("IAM_TOKEN_CLIENT_LIMIT", "600"))  # token requests per client per minute
# Device authorization (RFC 8628): requests one agent may have waiting for a person at once, and
# user codes one person may try per ten minutes.
IAM_DEVICE_PENDING_LIMIT = int(env("IAM_DEVICE_PENDING_LIMIT", "5"))
IAM_DEVICE_CODE_ATTEMPTS = int(env("IAM_DEVICE_CODE_ATTEMPTS", "10"))
IAM_TOKEN_IP_LIMIT = int(env("IAM_TOKEN_IP_LIMIT", "3000"))  # token requests per client IP per minute
# SCIM requests per minute per token (IdPs push in bursts: Okta up to ~600/min).
IAM_SCIM_RATE_LIMIT = int(env("IAM_SCIM_RATE_LIMIT", "1200"))
# Failed SCIM authentications per client IP and presented token id per minute before further
# failures are 429 (a valid token is always served: IdPs share addresses across customers).
IAM_SCIM_AUTH_FAILURE_LIMIT = int(env("IAM_SCIM_AUTH_FAILURE_LIMIT", "30"))
IAM_SCIM_MAX_PAGE = 200  # the largest `count` a list returns (ServiceProviderConfig filter.maxResults)
IAM_CLOCK_SKEW_SECONDS = 30
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = [IAM_CANONICAL_ORIGIN, *IAM_ORIGIN_ALIASES]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

if not DEBUG:
    # Production serves over HTTPS behind a proxy; the __Host- prefix pins cookies to it.
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_SECURE = True
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_SSL_REDIRECT = env_bool("IAM_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env("IAM_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("IAM_HSTS_PRELOAD", False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Mail (password reset links, security notices) ----------------------------------------
# Development prints mails to the console; production sends through SMTP.
_MAIL_BACKENDS = "django.core.mail.backends."
EMAIL_BACKEND = env("IAM_EMAIL_BACKEND", _MAIL_BACKENDS + ("console" if DEBUG else "smtp") + ".EmailBackend")
EMAIL_HOST = env("IAM_EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("IAM_EMAIL_PORT", "587"))
EMAIL_HOST_USER = env("IAM_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env("IAM_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("IAM_EMAIL_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("IAM_EMAIL_FROM", "Agent IAM <no-reply@localhost>")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agents.authentication.AgentTokenAuthentication",
        "rbac.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Deny by default: a view that forgets its permissions allows nothing.
    "DEFAULT_PERMISSION_CLASSES": ["web.api_permissions.DenyAll"],
    "EXCEPTION_HANDLER": "web.api_errors.exception_handler",
    # Every list is paged (at most web.pagination.MAX_PAGE_SIZE rows a page).
    "DEFAULT_PAGINATION_CLASS": "web.pagination.AdminCursorPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["web.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent IAM control plane API",
    "DESCRIPTION": (
        "The whole product's machine interfaces. The admin API (`/api/v1/orgs/{org}/`) takes "
        "`Authorization: Bearer <org API key>`, an agent's capability token, or a browser session with "
        'CSRF; its errors are `{"error": "<code>", "detail": "<message>", "fields"?: {...}}`. The '
        "protocol endpoints keep their standards' formats: OAuth 2.0 (`/oauth/{org}/...`, RFC 6749 "
        "§5.2 errors), SCIM 2.0 (`/scim/v2/`, RFC 7644 §3.12 errors), AuthZEN 1.0, trust signals and "
        "the SSO endpoints an identity provider calls."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Protocol endpoints are plain Django views, described in iam_project.openapi; the admin API's
    # operations are filed under their families by web.schema (one tag each, declared below).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "iam_project.openapi.protocol_paths",
        "web.schema.admin_api_tags",
    ],
    "TAGS": [
        {"name": "OAuth 2.0", "description": "The authorization server, one issuer per org "
         "(`{BASE}/oauth/{org}`): tokens (client credentials, token exchange, device code and refresh "
         "grants), introspection, revocation, metadata (RFC 8414) and signing keys."},
        {"name": "Delegation", "description": "An agent acting for a person: device authorization "
         "(RFC 8628) and the delegations people granted."},
        {"name": "Dispatch", "description": "Task runs, the trust gates they pass and the approvals "
         "they wait for; the agent reads its own run."},
        {"name": "Trust signals", "description": "A downstream service (a connection) reports what it "
         "saw an agent do."},
        {"name": "AuthZEN", "description": "OpenID AuthZEN 1.0 access evaluation: may this agent be "
         "dispatched for this operation now?"},
        {"name": "SCIM 2.0", "description": "Provisioning from an identity provider (RFC 7643, RFC 7644), "
         "with a SCIM token of the org."},
        {"name": "SSO", "description": "SSO connections and verified domains, and the endpoints an "
         "identity provider calls (SAML metadata, OIDC back-channel logout)."},
        {"name": "Members", "description": "People in the org and their invitations."},
        {"name": "Teams", "description": "Teams and their members."},
        {"name": "Roles", "description": "Custom roles, the built-in roles and the permission catalogue."},
        {"name": "API keys", "description": "The org's API keys."},
        {"name": "Agents", "description": "Agents: their grants, secrets, suspension and revocation."},
        {"name": "Connections", "description": "Downstream services (resource servers) by audience."},
        {"name": "Trust", "description": "Trust roots, attestations, the trust policy and agents' scores."},
        {"name": "Audit", "description": "The audit log, its hash chain and the access review export."},
        {"name": "Provisioning", "description": "SCIM tokens and group mappings."},
        {"name": "Security policy", "description": "The org's security policy."},
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "BuiltinRoleEnum": "core.roles.BuiltinRole",
        "TeamRoleEnum": "core.roles.TeamRole",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Internationalisation, static files -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Logging: one line per record, never a secret (services log ids, not credentials) -------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("IAM_LOG_LEVEL", "INFO")},
    # pysaml2 logs NameIDs at INFO and whole assertions at DEBUG: never below WARNING.
    "loggers": {"django.request": {"level": "ERROR"}, "saml2": {"level": "WARNING"}},
}
