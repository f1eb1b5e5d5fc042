"""Production: PostgreSQL, Redis, WhiteNoise for static files, secure cookies."""

import os

from .base import *  # noqa: F401,F403
from .base import env_bool

if SECRET_KEY == "insecure-dev-key-change-me":  # noqa: F405
    raise RuntimeError("Set LABELLER_SECRET_KEY in production.")
DEBUG = False
SESSION_COOKIE_SECURE = env_bool("LABELLER_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Behind nginx, media are handed over with X-Accel-Redirect after the tenancy check.
LABELLER["X_ACCEL_MEDIA_PREFIX"] = os.environ.get("LABELLER_X_ACCEL_MEDIA_PREFIX", "")  # noqa: F405
