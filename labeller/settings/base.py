"""Settings shared by every environment.

Configuration comes from the environment (LABELLER_*, DATABASE_URL, REDIS_URL,
CELERY_BROKER_URL). With nothing set, the app runs on the embedded default:
SQLite and Celery's filesystem broker under ``var/``, so a newcomer needs no server.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from labeller.core.filesystem_broker import broker_transport_for

BASE_DIR = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("LABELLER_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)  # empty, as compose passes an unset variable: the default


SECRET_KEY = os.environ.get("LABELLER_SECRET_KEY", "insecure-dev-key-change-me")
# Off unless asked for: Django's debug pages show tracebacks, settings and URL patterns.
DEBUG = env_bool("LABELLER_DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("LABELLER_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("LABELLER_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "csp",
    "axes",
    "labeller.core",
    "labeller.tenants",
    "labeller.projects",
    "labeller.media",
    "labeller.annotations",
    "labeller.training",
    "labeller.exports",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Prometheus metrics at /metrics (labeller.core.metrics): off unless LABELLER_METRICS=1; then
# answered only to `Authorization: Bearer <LABELLER_METRICS_TOKEN>` or to a direct (unproxied)
# request from LABELLER_METRICS_ALLOWED_IPS (comma-separated, empty by default).
METRICS_ENABLED = env_bool("LABELLER_METRICS", False)
METRICS_TOKEN = os.environ.get("LABELLER_METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = [ip for ip in os.environ.get("LABELLER_METRICS_ALLOWED_IPS", "").split(",") if ip]
if METRICS_ENABLED:
    # django-prometheus times requests between these two; axes stays last, as it requires.
    MIDDLEWARE = ["django_prometheus.middleware.PrometheusBeforeMiddleware", *MIDDLEWARE[:-1],
                  "django_prometheus.middleware.PrometheusAfterMiddleware", MIDDLEWARE[-1]]
# With PROMETHEUS_MULTIPROC_DIR (scripts/run and compose.yaml set it) the web server's and the
# Celery workers' metrics meet there; this must precede the process's first metric.
from labeller.core.metric_files import use_shared_metric_files  # noqa: E402

use_shared_metric_files()

ROOT_URLCONF = "labeller.urls"
WSGI_APPLICATION = "labeller.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_env(default_sqlite_path: Path) -> dict:
    """DATABASE_URL when set (PostgreSQL in production), else an embedded SQLite file."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return dj_database_url.parse(url, conn_max_age=env_int("LABELLER_DB_CONN_MAX_AGE", 60))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(default_sqlite_path),
        # The web server and the Celery worker write concurrently: WAL lets readers
        # proceed, and IMMEDIATE transactions wait for the lock instead of failing.
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": database_from_env(Path(os.environ.get("LABELLER_SQLITE_PATH", DATA_DIR / "labeller.sqlite3")))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("LABELLER_STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("LABELLER_MEDIA_ROOT", DATA_DIR / "media"))
# No MEDIA_URL route is ever mounted: media are served only through the API's
# authorised views, after the tenancy check.
MEDIA_URL = "/media-not-served/"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if os.environ.get("LABELLER_S3_BUCKET"):
    # S3-compatible object storage through django-storages; credentials come from the
    # standard AWS_* variables that boto3 reads.
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["LABELLER_S3_BUCKET"],
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "default_acl": None,
            "querystring_auth": True,
        },
    }

# Object storage: the videos a worker process decodes frames from are copied locally and kept
# up to this many bytes (least recently used dropped first; unused on disk storage).
MEDIA_LOCAL_COPY_BYTES = env_int("LABELLER_MEDIA_LOCAL_COPY_BYTES", 2 * 1024**3)

# django-axes counts failed logins (the app's login page and the Django admin's) and locks
# out a username from one address after LABELLER_LOGIN_FAILURE_LIMIT failures for
# LABELLER_LOGIN_COOLOFF_MINUTES. Username and address together: a stranger who mistypes
# (or guesses) someone's name cannot lock that person out everywhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LABELLER_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LABELLER_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "frontend/locked_out.html"
# Behind N reverse proxies that each append to X-Forwarded-For, the client's address is read
# from that header; with 0 (no proxy) only REMOTE_ADDR counts, so a client cannot forge one.
_proxy_count = env_int("LABELLER_PROXY_COUNT", 0)
if _proxy_count:
    AXES_IPWARE_PROXY_COUNT = _proxy_count
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# Script tokens (Authorization: Token <key>) stop working this long after they were issued.
API_TOKEN_LIFETIME = timedelta(days=env_int("LABELLER_API_TOKEN_LIFETIME_DAYS", 90))
# Invitation links to join an organisation work once, within this time.
INVITATION_LIFETIME = timedelta(days=env_int("LABELLER_INVITATION_LIFETIME_DAYS", 7))

# Password reset mails go through this backend: SMTP when LABELLER_EMAIL_HOST is set,
# else the console (the link appears in the server's log, enough for one machine).
EMAIL_HOST = os.environ.get("LABELLER_EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "LABELLER_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("LABELLER_EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("LABELLER_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("LABELLER_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("LABELLER_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("LABELLER_DEFAULT_FROM_EMAIL", "labeller@localhost")
PASSWORD_RESET_TIMEOUT = env_int("LABELLER_PASSWORD_RESET_TIMEOUT", 3 * 3600)

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Uploads: files above this size are streamed to a temporary file, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000  # many images in one request; more go in a zip

LABELLER = {
    "MAX_UPLOAD_BYTES": env_int("LABELLER_MAX_UPLOAD_BYTES", 4 * 1024**3),
    "MAX_VIDEO_SECONDS": env_int("LABELLER_MAX_VIDEO_SECONDS", 4 * 3600),
    "MAX_IMAGE_PIXELS": env_int("LABELLER_MAX_IMAGE_PIXELS", 100_000_000),
    "UPLOAD_CHUNK_MAX_BYTES": env_int("LABELLER_UPLOAD_CHUNK_MAX_BYTES", 64 * 1024**2),
    "MAX_IMAGE_BYTES": env_int("LABELLER_MAX_IMAGE_BYTES", 64 * 1024**2),
    # Zip uploads (images or datasets): refuse bombs before unpacking anything.
    "ZIP_MAX_FILES": env_int("LABELLER_ZIP_MAX_FILES", 20_000),
    "ZIP_MAX_BYTES": env_int("LABELLER_ZIP_MAX_BYTES", 4 * 1024**3),
    # Photos barely compress and annotation text rarely beyond 20x; bombs expand 1000x and more.
    "ZIP_MAX_RATIO": env_int("LABELLER_ZIP_MAX_RATIO", 200),
    # "imagenet" (torchvision's weights, downloaded once), "none" (random init) or a checkpoint path.
    "FEATURE_WEIGHTS": os.environ.get("LABELLER_FEATURE_WEIGHTS", "imagenet"),
    "FEATURE_BACKBONE": os.environ.get("LABELLER_FEATURE_BACKBONE", "alexnet"),
    "FEATURE_POOLING": os.environ.get("LABELLER_FEATURE_POOLING", "avg"),
    # The project's own detector (the learning loop): "tiny" trains from scratch in minutes on
    # a CPU; "resnet18"/"resnet50" with "imagenet" (or "coco" for resnet50) weights on a GPU.
    "DETECTOR_BACKBONE": os.environ.get("LABELLER_DETECTOR_BACKBONE", "tiny"),
    "DETECTOR_WEIGHTS": os.environ.get("LABELLER_DETECTOR_WEIGHTS", "none"),
    "DETECTOR_MAX_SIDE": env_int("LABELLER_DETECTOR_MAX_SIDE", 320),
    # A detector run lasts max(TRAINING_EPOCHS, TRAINING_MIN_IMAGES / training frames) epochs:
    # a project with few complete frames needs many passes over them (bench/learning.py).
    "TRAINING_EPOCHS": env_int("LABELLER_TRAINING_EPOCHS", 8),
    "TRAINING_MIN_IMAGES": env_int("LABELLER_TRAINING_MIN_IMAGES", 1500),
    "TRAINING_MAX_EPOCHS": env_int("LABELLER_TRAINING_MAX_EPOCHS", 80),
    "DETECTOR_LEARNING_RATE": float(os.environ.get("LABELLER_DETECTOR_LEARNING_RATE", "4e-3")),
    # Steps of the box refiner a detector run also trains (proposals.training.refiner; about
    # 40 s on two CPU cores); 0: none.
    "REFINER_STEPS": env_int("LABELLER_REFINER_STEPS", 1000),
    # Steps of an embedding run (batch-hard triplets, P labels x 4 crops each).
    "EMBEDDING_STEPS": env_int("LABELLER_EMBEDDING_STEPS", 120),
    # Periodic retraining: the detector after every retrain_every_boxes new confirmed boxes,
    # the (slower) embedding after this many times as many.
    "EMBEDDING_RETRAIN_FACTOR": env_int("LABELLER_EMBEDDING_RETRAIN_FACTOR", 4),
    # A run needs this many complete frames with boxes (a fifth of them validate it).
    "TRAINING_MIN_FRAMES": env_int("LABELLER_TRAINING_MIN_FRAMES", 8),
}

REST_FRAMEWORK = {
    # The token first: DRF takes the 401 header from the first class (see ExpiringTokenAuthentication).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeller.tenants.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Ceilings against runaway scripts, well above what the app's own pages send
    # (a workspace loads a frame in about ten requests).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("LABELLER_API_ANON_RATE", "300/min"),
        "user": os.environ.get("LABELLER_API_USER_RATE", "3000/min"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "labeller.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "labeller.api.schema.LabellerAutoSchema",
    "EXCEPTION_HANDLER": "labeller.api.exceptions.exception_handler",
    # JSON and form bodies obey DATA_UPLOAD_MAX_MEMORY_SIZE (413) and JSON a nesting limit (400).
    "DEFAULT_PARSER_CLASSES": [
        "labeller.api.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "labeller.api.parsers.FormParser",
    ],
}

# Content-Security-Policy for every page (django-csp). The frontend loads only same-origin
# ES modules and stylesheets and sets styles through the CSSOM (element.style), which CSP
# allows; frames reach the canvas via fetch() and createImageBitmap, so images need no
# data: or blob:. Media responses carry their own stricter policy (labeller.media.files),
# and the API docs page relaxes styles for itself only (labeller.urls).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# The debug page (LABELLER_DEBUG=1 only) hides settings and environment entries that may
# hold credentials, broker and database URLs included.
DEFAULT_EXCEPTION_REPORTER_FILTER = "labeller.settings.reporting.CredentialHidingReporterFilter"

SPECTACULAR_SETTINGS = {
    "TITLE": "Labeller API",
    "DESCRIPTION": "Multi-tenant labelling of objects in videos and images. "
    "Every tenant route lives under /api/v1/orgs/{org}/.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AnnotationStatusEnum": "labeller.annotations.models.AnnotationStatus",
        "FrameStatusEnum": "labeller.media.models.FrameStatus",
    },
}

# Celery: the embedded default is kombu's filesystem transport (no server needed);
# CELERY_BROKER_URL or REDIS_URL switch to Redis with no code change.
_broker_dir = DATA_DIR / "celery"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "filesystem://"
# On the filesystem broker: kombu's transport, publishing atomically (labeller.core.filesystem_broker).
CELERY_BROKER_TRANSPORT = broker_transport_for(CELERY_BROKER_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The transport polls its folder; kombu's default (1 s) adds up to a second to every task.
        "polling_interval": 0.1,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    # A broker that does not answer fails a publish in seconds (the write is kept; see
    # labeller.core.tasks), rather than hanging the request.
    else {"visibility_timeout": env_int("LABELLER_TASK_VISIBILITY_TIMEOUT", 3600), "socket_connect_timeout": 2}
)
# On Redis, a task whose worker never acknowledged it (killed, machine lost) goes to another
# worker after the visibility timeout. It must outlast the queue's longest task, or a task still
# running starts a second time; noticing a dead worker is beat's job, within minutes, from the
# heartbeats of ingest runs, exports and training runs. So per queue: interactive tasks take
# seconds (10 minutes), a bulk task up to most of an hour (a long video's scan or proposals), a
# training run hours. Each worker takes the longest of the queues it serves (workers.celery);
# LABELLER_TASK_VISIBILITY_TIMEOUT sets all three (the real-worker tests use 5 s).
TASK_VISIBILITY_TIMEOUTS = {
    queue: env_int("LABELLER_TASK_VISIBILITY_TIMEOUT", seconds)
    for queue, seconds in {"interactive": 600, "bulk": 3600, "training": 6 * 3600}.items()
}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On the filesystem transport (no event loop) a prefork worker acks a finished task only
# at its next 2-second polling round, and with one task prefetched it waits for that ack:
# about one task a second. The solo pool acks at once. Enqueue-to-start with a task every
# 0.37 s: p95 46 s before (the backlog grew), 0.1 s with solo and polling_interval 0.1.
CELERY_WORKER_POOL = "solo" if CELERY_BROKER_URL.startswith("filesystem") else "prefork"
# Queues (routes in workers.celery): "interactive" for what a person waits for, "bulk" for
# the rest. A task without a route is bulk: it can never delay a person.
CELERY_TASK_DEFAULT_QUEUE = "bulk"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LABELLER_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
CELERY_BEAT_SCHEDULE = {
    "enqueue-overdue-index-syncs": {"task": "workers.maintenance.enqueue_overdue_index_syncs", "schedule": 30.0},
    "enqueue-overdue-frame-refreshes": {"task": "workers.maintenance.enqueue_overdue_frame_refreshes", "schedule": 15.0},
    "release-expired-assignments": {"task": "workers.maintenance.release_expired_assignments", "schedule": 300.0},
    "delete-abandoned-uploads": {"task": "workers.maintenance.delete_abandoned_uploads", "schedule": 3600.0},
    "check-exports": {"task": "workers.maintenance.check_exports", "schedule": 60.0},
    "check-imports": {"task": "workers.maintenance.check_imports", "schedule": 60.0},
    "check-ingest-runs": {"task": "workers.maintenance.check_ingest_runs", "schedule": 60.0},
    "check-training-runs": {"task": "workers.training.check_training_runs", "schedule": 30.0},
}
# Resumable uploads are assembled here (shared by all web servers in production).
UPLOAD_DIR = Path(os.environ.get("LABELLER_UPLOAD_DIR", DATA_DIR / "uploads"))
