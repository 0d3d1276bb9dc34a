# A newcomer needs Python 3.11+ and make: `make run` serves a demo, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where `make run` serves; links, the OAuth issuer and metadata, the SCIM base URL and passkeys follow
# it through IAM_CANONICAL_ORIGIN (set that yourself when the browser reaches the server by another
# name). localhost, not 127.0.0.1: passkeys need a host name. It binds 127.0.0.1, so both answer.
HOST ?= localhost:8000
IAM_CANONICAL_ORIGIN ?= http://$(HOST)
PG_URL ?= postgres://postgres@127.0.0.1:5432/iam
REDIS ?= redis://127.0.0.1:6379

.PHONY: install peers run test test-services lint check bench lock clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	touch $@

install: $(BIN)/.installed

# The SSO tests' OpenID Provider (npm oidc-provider, from the committed lockfile). Without npm those
# tests skip (CI requires them); the SAML IdP is pysaml2 and needs xmlsec1 (apt-get install xmlsec1).
OIDC_PEER := tests/peers/oidc
$(OIDC_PEER)/node_modules/.installed: $(OIDC_PEER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(OIDC_PEER) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the OIDC tests against a local OpenID Provider will be skipped"; fi

peers: $(OIDC_PEER)/node_modules/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	IAM_CANONICAL_ORIGIN=$(IAM_CANONICAL_ORIGIN) $(BIN)/python manage.py seed_demo
	IAM_CANONICAL_ORIGIN=$(IAM_CANONICAL_ORIGIN) $(BIN)/python manage.py runserver $(HOST)

test: install peers
	$(BIN)/python -m pytest

# The same suite against PostgreSQL, Redis and a real Celery worker.
test-services: install peers
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS)/1 CELERY_BROKER_URL=$(REDIS)/2 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

check: install
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

bench: install
	$(BIN)/python -m bench

# After changing dependencies in pyproject.toml: re-pin every version into requirements.lock.
lock: install
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
		-o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache $(OIDC_PEER)/node_modules
