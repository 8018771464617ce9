# The two commands: `make run` and `make test`. Everything else here serves them.
SHELL := /bin/bash
.DEFAULT_GOAL := run

VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell scripts/find-python)
HTMX := static/vendor/htmx.min.js

# Test services: the machine's PostgreSQL and Redis (CI starts them if stopped).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cdb_console
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14
# Throwaway secrets for checks and benchmarks, which run with DEBUG off as production does
# (pytest brings its own, see [tool.pytest_env] in pyproject.toml).
TEST_SECRETS := SECRET_KEY=test-only-secret-key-never-used-outside-the-test-suite-0123456789 \
	AUDIT_HMAC_KEY=test-only-audit-key-never-used-outside-the-test-suite

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(HTMX): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

staticfiles/.built: $(VENV)/.installed $(HTMX) $(shell find static -type f -not -path 'static/vendor/*')
	$(PY) manage.py collectstatic --noinput -v0
	touch $@

.PHONY: build run test lint services chromium prometheus bench clean
build: $(VENV)/.installed $(HTMX) staticfiles/.built

# Embedded default: SQLite and a filesystem broker under var/. Set DATABASE_URL and
# CELERY_BROKER_URL to run on PostgreSQL and Redis instead.
run: build
	mkdir -p var
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(PY) manage.py load_playbook
	DEBUG=$${DEBUG:-true} $(PY) manage.py load_prometheus_rules
	DEBUG=$${DEBUG:-true} $(PY) manage.py load_services $$( [ "$${CDB_HEALTH:-0}" = "1" ] && echo --enable )
	DEBUG=$${DEBUG:-true} $(PY) manage.py seed_demo $$( [ "$${DEMO:-1}" = "0" ] && echo --no-incidents )
	@DEBUG=$${DEBUG:-true} exec $(PY) scripts/supervise.py Procfile.dev

services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; echo "PostgreSQL or Redis did not start" >&2; exit 1

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

prometheus:
	@test -x /usr/bin/prometheus || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null)

lint: build
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: build services chromium prometheus lint
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) manage.py check
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) DJANGO_ALLOW_ASYNC_UNSAFE=true \
		$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: build services
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) bench/console.py
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) bench/killswitch.py
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) bench/ingest.py
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) bench/escalation.py
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) bench/postmortems.py
	$(TEST_SECRETS) DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(PY) bench/drills.py

clean:
	rm -rf $(VENV) node_modules static/vendor var staticfiles
