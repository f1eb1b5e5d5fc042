"""The embedded default: one machine, nothing installed (SQLite, filesystem broker)."""

from .base import *  # noqa: F401,F403
from .base import env_bool

# Off by default even here: scripts/run serves this on a real port. LABELLER_DEBUG=1 turns
# on the debug pages while developing.
DEBUG = env_bool("LABELLER_DEBUG", False)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Serve static files straight from the apps (no collectstatic needed outside production).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
