"""Test settings: PostgreSQL when DATABASE_URL is set (CI), SQLite otherwise."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F401,F403
from .base import DATA_DIR, DATABASES, broker_transport_for

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
MEDIA_ROOT = Path(os.environ.get("LABELLER_MEDIA_ROOT") or tempfile.mkdtemp(prefix="labeller-test-media-"))
LABELLER["FEATURE_WEIGHTS"] = "none"  # noqa: F405  (no network here: random-init weights)
# Retraining in tests: a few small epochs on tiny frames, so a real run takes seconds.
LABELLER.update(TRAINING_EPOCHS=20, TRAINING_MIN_IMAGES=0, DETECTOR_MAX_SIDE=96, TRAINING_MIN_FRAMES=6,  # noqa: F405
                EMBEDDING_STEPS=4, REFINER_STEPS=20)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so a real Celery worker process can share the test database;
    # one per test run, so runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-labeller-{os.getpid()}.sqlite3")}
# Serve static files straight from the apps (no collectstatic needed outside production).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
# Publishing in unit tests goes nowhere; the worker tests point publisher and worker at a real broker.
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT = broker_transport_for(CELERY_BROKER_URL)  # base.py chose it for its own URL
CELERY_BROKER_TRANSPORT_OPTIONS = {}
UPLOAD_DIR = MEDIA_ROOT / "uploads"
