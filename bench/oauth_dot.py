"""django-oauth-toolkit, the peer of our token endpoint: its own virtualenv and a minimal project.

DOT is not one of our dependencies, so it lives in a separate virtualenv (outside the repository,
reused between runs) holding the same Django and gunicorn versions as ours. The project is generated
into a temporary directory: `django-admin startproject`'s middleware, DEBUG off, PostgreSQL with the
same persistent connections as ours, and DOT's defaults everywhere else (its Application model,
client secrets hashed with Django's default password hasher, opaque access tokens stored in the
database).
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import django
import gunicorn

DEFAULT_VENV = Path("/tmp/bench-dot-venv")
DOT_REQUIREMENT = "django-oauth-toolkit>=3,<4"
SCOPE = "read"

SETTINGS = """\
import os

SECRET_KEY = os.environ["BENCH_DOT_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "oauth2_provider",
]
MIDDLEWARE = [  # django-admin startproject's list
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "dotbench.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["BENCH_DOT_DB"],
        "USER": os.environ.get("BENCH_PG_USER", "postgres"),
        "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
        "CONN_MAX_AGE": 60,  # as ours (dj_database_url conn_max_age=60, health checks on)
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
"""

URLS = """\
from django.urls import include, path

urlpatterns = [path("o/", include("oauth2_provider.urls", namespace="oauth2_provider"))]
"""

WSGI = """\
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
"""

# Run in DOT's project by `django-admin shell`: one Application per secret-storage mode. Secrets come
# in through the environment, never on a command line.
SEED = """\
import json, os
from oauth2_provider.models import Application
out = {}
for label, hashed in (("hashed", True), ("plain", False)):
    app = Application(name="bench-" + label, client_type="confidential",
                      authorization_grant_type="client-credentials",
                      client_secret=os.environ["BENCH_DOT_CLIENT_SECRET"], hash_client_secret=hashed)
    app.save()
    out[label] = app.client_id
    if hashed:  # what DOT stored: the hasher and its work factor, e.g. pbkdf2_sha256 1000000
        out["hasher"] = " ".join(Application.objects.get(pk=app.pk).client_secret.split("$")[:2])
print(json.dumps(out))
"""


def ensure_venv(venv: Path) -> Path:
    """The DOT virtualenv's bin directory, created on first use with our Django and gunicorn versions."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c",
             "import oauth2_provider, psycopg, gunicorn, django; print(django.__version__)"]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == django.__version__:
            return venv / "bin"
    print(f"creating the django-oauth-toolkit virtualenv in {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"Django=={django.__version__}",
                    f"gunicorn=={gunicorn.__version__}", "psycopg[binary]", DOT_REQUIREMENT],
                   check=True, timeout=600)
    subprocess.run(probe, check=True, capture_output=True)
    return venv / "bin"


def dot_version(bin_dir: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('django-oauth-toolkit'))"
    return subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def write_project(root: Path) -> None:
    package = root / "dotbench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS)
    (package / "urls.py").write_text(URLS)
    (package / "wsgi.py").write_text(WSGI)


def project_env(root: Path, database: str, pg: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "IAM_"))}
    env.update(DJANGO_SETTINGS_MODULE="dotbench.settings", PYTHONPATH=str(root), BENCH_DOT_DB=database,
               BENCH_DOT_SECRET_KEY=secrets.token_urlsafe(50), BENCH_PG_USER=pg["user"],
               BENCH_PG_HOST=pg["host"], BENCH_PG_PORT=str(pg["port"]))
    env.pop("VIRTUAL_ENV", None)
    return env


def migrate_and_seed(bin_dir: Path, root: Path, env: dict, client_secret: str) -> dict:
    """Migrate DOT's database and create the two Applications.

    Returns {"hashed": client_id, "plain": client_id, "hasher": "<algorithm> <iterations>"}.
    """
    admin = str(bin_dir / "django-admin")
    subprocess.run([admin, "migrate", "--noinput", "-v0"], cwd=root, env=env, check=True, timeout=300)
    seeded = subprocess.run([admin, "shell", "-c", SEED], cwd=root, env={**env, "BENCH_DOT_CLIENT_SECRET":
                            client_secret}, capture_output=True, text=True, check=True, timeout=120)
    return last_json_line(seeded.stdout)


def last_json_line(stdout: str) -> dict:
    """A management shell step prints its result as JSON on its last line (anything before is logging)."""
    return json.loads(stdout.strip().splitlines()[-1])
