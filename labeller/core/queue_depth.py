"""How many tasks wait in each Celery queue, read straight from the broker.

Only the two brokers the app is run with are read: Redis (the queue is a list, plus one list
per priority step) and kombu's filesystem transport of the embedded default (one message file
``<time>_<uuid>.<queue>.msg`` per waiting task in its in-folder). Tasks a worker has taken but
not yet acknowledged are not counted: they are running, not waiting.

Reading is bounded: a Redis that does not answer costs at most about a second per scrape.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

# kombu.transport.redis's defaults: a queue "q" of priority p > 0 lives in the list "q\x06\x16p".
REDIS_PRIORITY_SEPARATOR = "\x06\x16"
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_TIMEOUT_S = 1.0


class UnsupportedBroker(Exception):
    """A transport this module cannot count (memory://, amqp://, ...)."""


def broker_transport(broker_url: str) -> str:
    return urlsplit(broker_url.split(";")[0]).scheme.split("+")[0] or "unknown"


def queue_depths(broker_url: str, transport_options: dict, queues: list[str]) -> dict[str, int]:
    """Waiting messages per queue. Raises UnsupportedBroker, or whatever reading failed with."""
    transport = broker_transport(broker_url)
    if transport in ("redis", "rediss"):
        return _redis_depths(broker_url.split(";")[0], transport_options, queues)
    if transport == "filesystem":
        return _filesystem_depths(transport_options, queues)
    raise UnsupportedBroker(transport)


def _redis_depths(url: str, options: dict, queues: list[str]) -> dict[str, int]:
    import redis

    prefix = options.get("global_keyprefix", "")
    steps = options.get("priority_steps", REDIS_PRIORITY_STEPS)
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for step in steps:
                    pipe.llen(f"{prefix}{queue}{REDIS_PRIORITY_SEPARATOR}{step}" if step else f"{prefix}{queue}")
            lengths = iter(pipe.execute())
        return {queue: sum(next(lengths) for _ in steps) for queue in queues}
    finally:
        client.close()


def _filesystem_depths(options: dict, queues: list[str]) -> dict[str, int]:
    folder = options.get("data_folder_in")
    if not folder:
        raise UnsupportedBroker("filesystem without data_folder_in")
    counts = dict.fromkeys(queues, 0)
    suffixes = {f".{queue}.msg": queue for queue in queues}
    with os.scandir(folder) as entries:
        for entry in entries:
            queue = suffixes.get("." + entry.name.split(".", 1)[-1])
            if queue is not None:
                counts[queue] += 1
    return counts
