"""One settings module for every environment, driven by environment variables.

Defaults suit a laptop (`make run`: SQLite and a filesystem broker under var/). Production sets
DEBUG=false, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and CELERY_BROKER_URL; with DEBUG off the
secure defaults (HTTPS redirect, HSTS, secure cookies) apply unless explicitly relaxed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# Secrets. With DEBUG on, development keys stand in; with DEBUG off nothing does: an unset (or empty)
# SECRET_KEY or AUDIT_HMAC_KEY stays empty, `manage.py check` fails (console.E001/E002) and the web
# and Celery processes refuse to start (console.checks.require_secrets).
_DEV_SECRET_KEY = "django-insecure-development-only-set-SECRET_KEY-when-DEBUG-is-off"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="") or (_DEV_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "guardian",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "console",
    "incidents",
    "killswitch",
    "detection",
    "notify",
    "oncall",
    "comms",
    "escalation",
    "actions",
    "postmortems",
    "drills",
    "playbookreview",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Before sessions (they live in the database): without a database, a plain 503 or an offline page.
    "console.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "killswitch.middleware.audit_actor",
    "killswitch.offline.may_halt_cookie",
    # Last: turns a login locked out by django-axes into the login page's lockout message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "killswitch.context_processors.killswitch",
                "console.context_processors.liveness",
                "console.context_processors.notices",
                "notify.context_processors.inbox",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'console.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL and immediate transactions avoid lock upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A request never waits long on a lock: a webhook then answers 503 and its sender retries.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c lock_timeout={env.int('DB_LOCK_TIMEOUT_MS', default=5000)}"
    )
    # An unreachable server is noticed in seconds (libpq waits for ever by default): pages then
    # answer 503 and the kill switch halts without the database.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses any password check (login, approval, CLI) for a locked-out account or address.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object; every page needs login.
GUARDIAN_MONKEY_PATCH_USER = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "incidents:home"
LOGOUT_REDIRECT_URL = "login"

# Logins (django-axes). Every password check counts: the console's login page (which Django admin
# uses too), the code step, re-authentication at approval and the CLI. LOGIN_FAILURE_LIMIT failures
# within LOGIN_LOCKOUT_MINUTES lock the account (from any address) and, separately, the address (for
# any account) for LOGIN_LOCKOUT_MINUTES. A superuser lifts one early: manage.py axes_reset_username.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_CALLABLE = "console.views.lockout"
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failure kept (admin: Axes > Access failures)
AXES_SENSITIVE_PARAMETERS: list[str] = []  # log the account and the address; passwords never
# A success does not wipe the failures: an attacker's own good login must not reset an address's count.
AXES_RESET_ON_SUCCESS = False
AXES_VERBOSE = False  # no banner on every process start; failures are still logged
# Second factor (django-otp, TOTP). Optional per person; mandatory for every holder of the
# approve-resume permission when OTP_REQUIRED_FOR_APPROVERS is on.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="CDB Incident Console")
OTP_REQUIRED_FOR_APPROVERS = env.bool("OTP_REQUIRED_FOR_APPROVERS", default=False)

# Sessions live in the database (revocable server-side); the session row also carries the user id
# so the live page's poll can authenticate, authorise and compare versions in one query.
SESSION_ENGINE = "console.sessions"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=int(timedelta(hours=12).total_seconds()))
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Security headers. With DEBUG off these default to production values.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# Celery. The embedded default is a filesystem broker: no Redis needed for `make run`.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (worker control) files too: under var/, never in the source tree.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Work is woken through the broker as soon as it is committed (console.wakeup); beat's sweeps find it
# anyway. Off only where nothing consumes the queue (the test suite, which calls sweeps directly).
WAKE_WORKERS = env.bool("WAKE_WORKERS", default=True)
# No remote control (celery inspect/control): its broadcast channel, like gossip's and mingle's (off in
# the Procfile), is what lets a Redis outage kill a worker for good (README, "Keeping it running").
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "incidents-sweep-sla": {
        "task": "incidents.tasks.sweep_sla_breaches",
        "schedule": env.float("SLA_SWEEP_SECONDS", default=15.0),
        "options": {"expires": 60},
    },
}

# GET /metrics (Prometheus): a bearer token, and/or the networks that may scrape without one (the
# direct peer's address: a proxy in front counts as the peer). Neither set: closed.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# Prometheus scrapes gunicorn directly on the internal network too: no redirect to HTTPS there.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]

# How often the live incident page asks "has anything changed?" (milliseconds).
LIVE_POLL_MS = env.int("LIVE_POLL_MS", default=1500)

# Routine traffic is logged only when it goes wrong (ROUTINE_LOG_LEVEL): a task received and
# succeeded, beat sending one (every few seconds), and runserver's line for each request (every open
# page polls; 4xx and 5xx are warnings and errors, so they stay), so the console's own messages stay
# readable in `make run`.
ROUTINE_LOG_LEVEL = env.str("ROUTINE_LOG_LEVEL", default="WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "apprise": {"level": "WARNING"},
        "celery.app.trace": {"level": ROUTINE_LOG_LEVEL},
        "celery.worker.strategy": {"level": ROUTINE_LOG_LEVEL},
        "celery.beat": {"level": ROUTINE_LOG_LEVEL},
        "django.server": {"level": ROUTINE_LOG_LEVEL},
    },
}

# Kill switch. Targets: `name=file:PATH` or `name=http://risk:8002`, `;`-separated, production first.
_default_state_file = env.str(
    "CDB_KILL_SWITCH_STATE_FILE", default="var/cdb/production/.cdb_kill_switch.state"
)
KILLSWITCH_TARGETS = env.str(
    "KILLSWITCH_TARGETS",
    default=f"production=file:{_default_state_file};drill=file:var/cdb/drill/.cdb_kill_switch.state",
)
# Which target drills act on: empty means the second target (the first is always production).
KILLSWITCH_DRILL_TARGET = env.str("KILLSWITCH_DRILL_TARGET", default="")
KILLSWITCH_HTTP_TIMEOUT = env.float("KILLSWITCH_HTTP_TIMEOUT", default=3.0)
# A state file read that takes longer (a FIFO, a stale network mount) is unevaluable.
KILLSWITCH_FILE_TIMEOUT = env.float("KILLSWITCH_FILE_TIMEOUT", default=2.0)
# The banner reads every target live; each process reuses a read for this long.
KILLSWITCH_BANNER_CACHE_SECONDS = env.float("KILLSWITCH_BANNER_CACHE_SECONDS", default=1.0)
# Halts made while the database could not record them, kept (fsynced) until reconcile records them.
# Web, CLI and worker on this host must share it.
KILLSWITCH_SPOOL = env.str("KILLSWITCH_SPOOL", default=str(VAR_DIR / "killswitch-spool.jsonl"))
# How long the signed "may halt" cookie set at login lets its holder halt while the database is
# unreachable (sessions live in the database); 0 turns halting from the web without it off.
KILLSWITCH_OFFLINE_HALT_SECONDS = env.int("KILLSWITCH_OFFLINE_HALT_SECONDS", default=SESSION_COOKIE_AGE)
KILLSWITCH_RESUME_MINUTES = env.int("KILLSWITCH_RESUME_MINUTES", default=15)
KILLSWITCH_REAUTH_SECONDS = env.int("KILLSWITCH_REAUTH_SECONDS", default=300)
KILLSWITCH_RECONCILE_SECONDS = env.float("KILLSWITCH_RECONCILE_SECONDS", default=10.0)
KILLSWITCH_POWERS_RECONCILE_SECONDS = env.float("KILLSWITCH_POWERS_RECONCILE_SECONDS", default=60.0)
# Keys the audit chain's HMAC. Keep it outside the database (and stable: changing it breaks verification).
# Derived from SECRET_KEY only with DEBUG on; production sets it explicitly (see Secrets above).
AUDIT_HMAC_KEY = env.str("AUDIT_HMAC_KEY", default="") or (f"audit:{SECRET_KEY}" if DEBUG else "")
# The audit anchor: every committed audit record's seq and digest, appended to a file outside the
# database, so that verify-audit notices a TRUNCATE, a flush or a rewritten chain end. Put it on
# another volume than the database (by default next to the production state file); empty turns it off.
AUDIT_ANCHOR_FILE = env.str(
    "AUDIT_ANCHOR_FILE", default=str(Path(_default_state_file).parent / ".console-audit-anchor")
)
CELERY_BEAT_SCHEDULE |= {
    "killswitch-reconcile": {
        "task": "killswitch.tasks.reconcile_targets",
        "schedule": KILLSWITCH_RECONCILE_SECONDS,
        "options": {"expires": KILLSWITCH_RECONCILE_SECONDS},
    },
    # Who holds which kill-switch power, compared with the audited state: finds raw SQL and .update().
    "killswitch-reconcile-powers": {
        "task": "killswitch.tasks.reconcile_powers",
        "schedule": KILLSWITCH_POWERS_RECONCILE_SECONDS,
        "options": {"expires": KILLSWITCH_POWERS_RECONCILE_SECONDS},
    },
    "killswitch-expire-resume-requests": {
        "task": "killswitch.tasks.expire_resume_requests",
        "schedule": 30.0,
        "options": {"expires": 60},
    },
}

# Detection. Webhooks authenticate with one bearer token per source; none configured means none accepted.
WEBHOOK_TOKENS = {
    "alertmanager": env.str("ALERTMANAGER_WEBHOOK_TOKEN", default=""),
    "grafana": env.str("GRAFANA_WEBHOOK_TOKEN", default=""),
}
WEBHOOK_MAX_BYTES = env.int("WEBHOOK_MAX_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(WEBHOOK_MAX_BYTES + 1, 2_621_440)
# Which labels group alerts into one incident.
ALERT_GROUP_BY = env.list("ALERT_GROUP_BY", default=["alertname", "service"])
ALERT_ROUTE_SWEEP_SECONDS = env.float("ALERT_ROUTE_SWEEP_SECONDS", default=5.0)
# Health polling: every HEALTH_POLL_SECONDS; down after HEALTH_DOWN_AFTER failures in a row, up after
# HEALTH_UP_AFTER successes in a row (flap damping); the newest HEALTH_RESULTS_KEEP results per service.
HEALTH_POLL_SECONDS = env.float("HEALTH_POLL_SECONDS", default=15.0)
HEALTH_DOWN_AFTER = env.int("HEALTH_DOWN_AFTER", default=3)
HEALTH_UP_AFTER = env.int("HEALTH_UP_AFTER", default=2)
HEALTH_RESULTS_KEEP = env.int("HEALTH_RESULTS_KEEP", default=500)
# Where CDB's services answer: {name} and {port} are filled per service (e.g. http://cdb_risk:8002).
CDB_BASE_URL = env.str("CDB_BASE_URL", default="http://{name}:{port}")
# Where health checks and Prometheus queries may go: host names, IP addresses or networks. Unset: CDB's
# container names (detection/data/services.yaml), cdb_prometheus and loopback (detection/outbound.py).
DETECTION_ALLOWED_HOSTS = env.list("DETECTION_ALLOWED_HOSTS", default=None)
# The services whose `/status` (beside their /health) is snapshotted on an incident's timeline when it
# is declared and when it resolves (the post-mortem's exposure and orders affected); empty: none.
CDB_STATUS_SERVICES = env.list("CDB_STATUS_SERVICES", default=["cdb_risk", "cdb_execution"])
CDB_STATUS_TIMEOUT = env.float("CDB_STATUS_TIMEOUT", default=3.0)
# Snapshots are stored as requests and taken by a worker (woken at once, or by this sweep when the
# broker was down); one not taken this long after its moment is closed as missed, said on the timeline.
CDB_STATUS_SWEEP_SECONDS = env.float("CDB_STATUS_SWEEP_SECONDS", default=15.0)
CDB_STATUS_MISSED_AFTER = env.float("CDB_STATUS_MISSED_AFTER", default=900.0)
# The longest any health check or Prometheus query may wait (seconds), checked in admin and at use.
DETECTION_MAX_TIMEOUT = env.float("DETECTION_MAX_TIMEOUT", default=10.0)
# Prometheus's HTTP API; empty disables rule evaluation.
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="")
PROMETHEUS_EVAL_SECONDS = env.float("PROMETHEUS_EVAL_SECONDS", default=15.0)
PROMETHEUS_TIMEOUT = env.float("PROMETHEUS_TIMEOUT", default=5.0)
CELERY_BEAT_SCHEDULE |= {
    "detection-poll-health": {
        "task": "detection.tasks.poll_health",
        "schedule": HEALTH_POLL_SECONDS,
        "options": {"expires": HEALTH_POLL_SECONDS},
    },
    "detection-prune-health": {"task": "detection.tasks.prune_health_results", "schedule": 300.0},
    # Webhooks wake a router per delivery; this sweep routes what waits anyway (broker down, lost wake-up).
    "detection-route-signals": {
        "task": "detection.tasks.route_signals",
        "schedule": ALERT_ROUTE_SWEEP_SECONDS,
        "options": {"expires": ALERT_ROUTE_SWEEP_SECONDS},
    },
    "detection-status-snapshots": {
        "task": "detection.tasks.take_status_snapshots",
        "schedule": CDB_STATUS_SWEEP_SECONDS,
        "options": {"expires": CDB_STATUS_SWEEP_SECONDS},
    },
    "detection-prometheus": {
        "task": "detection.tasks.evaluate_prometheus_rules",
        "schedule": PROMETHEUS_EVAL_SECONDS,
        "options": {"expires": PROMETHEUS_EVAL_SECONDS},
    },
}

# Notifications (notify/). Channels are Apprise URLs, from admin or from NOTIFY_CHANNELS
# ("incidents=slack://...;engineering=discord://...;stakeholders=mailto://..."); a name here wins.
from notify.config import parse_channels  # noqa: E402

NOTIFY_CHANNELS = parse_channels(env.str("NOTIFY_CHANNELS", default=""))
# Email to people (pages, summaries): an Apprise mailto URL naming the SMTP server and the sender,
# e.g. "mailtos://user:pass@smtp.example.com:587?from=console@example.com"; empty: no email.
NOTIFY_EMAIL_URL = env.str("NOTIFY_EMAIL_URL", default="")
NOTIFY_CONNECT_TIMEOUT = env.float("NOTIFY_CONNECT_TIMEOUT", default=4.0)
NOTIFY_READ_TIMEOUT = env.float("NOTIFY_READ_TIMEOUT", default=10.0)
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=10)
NOTIFY_RETRY_BASE_SECONDS = env.float("NOTIFY_RETRY_BASE_SECONDS", default=5.0)
NOTIFY_RETRY_MAX_SECONDS = env.float("NOTIFY_RETRY_MAX_SECONDS", default=900.0)
# A message left "sending" longer than this by a dead worker is sent again (at-least-once).
NOTIFY_SENDING_LEASE_SECONDS = env.float(
    "NOTIFY_SENDING_LEASE_SECONDS", default=max(60.0, 3 * (NOTIFY_CONNECT_TIMEOUT + NOTIFY_READ_TIMEOUT))
)
NOTIFY_CONCURRENCY = env.int("NOTIFY_CONCURRENCY", default=8)
NOTIFY_SWEEP_SECONDS = env.float("NOTIFY_SWEEP_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE |= {
    "notify-deliver": {
        "task": "notify.tasks.deliver_messages",
        "schedule": NOTIFY_SWEEP_SECONDS,
        "options": {"expires": NOTIFY_SWEEP_SECONDS * 2},
    },
}

# Communication (comms/): links in messages point here; the status-update reminder sweep's period.
CONSOLE_URL = env.str("CONSOLE_URL", default="http://127.0.0.1:8000")
COMMS_REMINDER_SWEEP_SECONDS = env.float("COMMS_REMINDER_SWEEP_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE |= {
    "comms-remind-overdue-updates": {
        "task": "comms.tasks.remind_overdue_updates",
        "schedule": COMMS_REMINDER_SWEEP_SECONDS,
        "options": {"expires": COMMS_REMINDER_SWEEP_SECONDS * 2},
    },
}

# Escalation (escalation/): how often beat looks for due steps (steps due at once also wake it).
ESCALATION_SWEEP_SECONDS = env.float("ESCALATION_SWEEP_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE |= {
    "escalation-escalate": {
        "task": "escalation.tasks.escalate",
        "schedule": ESCALATION_SWEEP_SECONDS,
        "options": {"expires": ESCALATION_SWEEP_SECONDS * 2},
    },
}

# Action items (actions/): how often beat reminds owners of overdue items (once per due date each).
ACTION_ITEMS_REMIND_SECONDS = env.float("ACTION_ITEMS_REMIND_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE |= {
    "actions-remind-overdue": {
        "task": "actions.tasks.remind_overdue",
        "schedule": ACTION_ITEMS_REMIND_SECONDS,
        "options": {"expires": ACTION_ITEMS_REMIND_SECONDS * 2},
    },
}

# Post-mortems (postmortems/): how often beat looks for deadline reminders and overdue post-mortems.
POSTMORTEM_SWEEP_SECONDS = env.float("POSTMORTEM_SWEEP_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE |= {
    "postmortems-sweep-deadlines": {
        "task": "postmortems.tasks.sweep_deadlines",
        "schedule": POSTMORTEM_SWEEP_SECONDS,
        "options": {"expires": POSTMORTEM_SWEEP_SECONDS * 2},
    },
}

# The playbook (incidents/playbook.py): its owner gets the quarterly review reminder (a username;
# empty: whoever holds the on-call rota's tech-lead duty, else every lead). The sweep runs hourly.
PLAYBOOK_OWNER = env.str("PLAYBOOK_OWNER", default="")
PLAYBOOK_REVIEW_SWEEP_SECONDS = env.float("PLAYBOOK_REVIEW_SWEEP_SECONDS", default=3600.0)
CELERY_BEAT_SCHEDULE |= {
    "comms-remind-playbook-review": {
        "task": "comms.tasks.remind_playbook_review",
        "schedule": PLAYBOOK_REVIEW_SWEEP_SECONDS,
        "options": {"expires": PLAYBOOK_REVIEW_SWEEP_SECONDS},
    },
}

# Drills (playbook section 9): occurrences generated a year ahead from each type's RRULE, and the
# announcement sweep (24 hours before each drill).
DRILL_ANNOUNCE_HOURS = env.int("DRILL_ANNOUNCE_HOURS", default=24)
DRILL_ANNOUNCE_SECONDS = env.float("DRILL_ANNOUNCE_SECONDS", default=60.0)
CELERY_BEAT_SCHEDULE |= {
    "drills-generate": {
        "task": "drills.tasks.generate_drills",
        "schedule": 3600.0,
        "options": {"expires": 3600},
    },
    "drills-announce": {
        "task": "drills.tasks.announce_drills",
        "schedule": DRILL_ANNOUNCE_SECONDS,
        "options": {"expires": DRILL_ANNOUNCE_SECONDS * 2},
    },
}
