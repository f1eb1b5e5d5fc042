"""What Django's error reports may show (imported by dotted path from the settings)."""

import re

from django.views.debug import SafeExceptionReporterFilter


class CredentialHidingReporterFilter(SafeExceptionReporterFilter):
    """Django's default list plus connection URLs, which embed passwords
    (``redis://:secret@host``) under names the default list misses."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|BROKER|RESULT_BACKEND|DATABASE_URL|REDIS|DSN", flags=re.I
    )
