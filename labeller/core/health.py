"""``/healthz``: whether the database and the broker answer, each reported on its own.

Anyone can call it, so it says only ``ok`` or ``unavailable`` per dependency: error texts name
hosts, users and databases, and broker URLs carry passwords. The logs keep the details.

The database down is 503: no page or API call can be served. The broker down is 200 with
``"status": "degraded"``: requests still work (a write keeps its record and beat sends the
work again) and load balancers should keep routing to this server, while monitoring sees which
dependency failed.
"""

import logging

from celery import current_app
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

# Seconds to connect to the broker and to wait for its answer: the compose healthcheck gives
# the whole request 5 s, and a broker that accepts connections but never answers must not hang it.
BROKER_TIMEOUT_S = 1.5


def database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means unavailable
        logger.exception("healthz: the database does not answer")
        return False
    return True


def broker_answers() -> bool:
    timeouts = {"socket_connect_timeout": BROKER_TIMEOUT_S, "socket_timeout": BROKER_TIMEOUT_S}
    try:
        with current_app.connection_for_write(transport_options=timeouts) as broker:
            broker.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_S)
            broker.default_channel  # noqa: B018 - opening the channel is the round trip (Redis: PING)
    except Exception as error:  # any broker failure means unavailable
        # One line per poll during an outage; kombu's and redis's messages name the host, not the password.
        logger.warning("healthz: the broker does not answer: %s: %s", type(error).__name__, error)
        return False
    return True


def healthz(request):
    database, broker = database_answers(), broker_answers()
    body = {
        "status": "ok" if database and broker else "degraded" if database else "unhealthy",
        "database": "ok" if database else "unavailable",
        "broker": "ok" if broker else "unavailable",
    }
    return JsonResponse(body, status=200 if database else 503)
