"""Production: PostgreSQL, Redis, WhiteNoise for static files, secure cookies."""

import os

from .base import *  # noqa: F401,F403
from .base import env_bool

# The development default and .env.example's placeholder ("change-me") are public: anyone
# could forge sessions and password reset links with them.
if not SECRET_KEY.strip() or "change-me" in SECRET_KEY:  # noqa: F405
    raise RuntimeError(
        "Set LABELLER_SECRET_KEY to a secret of your own in production (not the example's); generate one with: "
        'python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
    )
DEBUG = False
SESSION_COOKIE_SECURE = env_bool("LABELLER_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Behind nginx, media are handed over with X-Accel-Redirect after the tenancy check.
LABELLER["X_ACCEL_MEDIA_PREFIX"] = os.environ.get("LABELLER_X_ACCEL_MEDIA_PREFIX", "")  # noqa: F405
