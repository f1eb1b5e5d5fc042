"""kombu's filesystem transport (the embedded default's broker), made safe to publish to
while a worker polls.

kombu writes a message by creating ``<time>_<uuid>.<queue>.msg`` and then writing into it,
so a worker polling the folder can take the file while it is still empty: it reads no
bytes, fails to decode them and stops with "Unrecoverable error: JSONDecodeError" (kombu
issue 1551), and the task is lost. Seen here: the interactive worker of scripts/run
stopped this way nine minutes into bench/assist.py's simulated labelling. This transport
writes the message under a name no worker looks at, then renames it into place, which is
atomic on POSIX, so a worker sees a whole message or none. A message file that cannot be
decoded anyway (written by something else, or cut short by a full disk) is logged and
skipped instead of stopping the worker.

Selected by ``CELERY_BROKER_TRANSPORT`` (see :func:`broker_transport_for`) whenever the
broker URL is ``filesystem://``; the URL, the folders and the message names stay kombu's.
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


def broker_transport_for(broker_url: str) -> str | None:
    """Celery's ``broker_transport`` for ``broker_url``: this module's transport for the
    filesystem broker, None (the URL's scheme decides) for any other. Celery lets a set
    transport win over the URL's scheme, so it must change whenever the URL does."""
    return f"{__name__}:Transport" if broker_url.startswith("filesystem") else None


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` on ``queue``: written whole to a hidden file, then renamed into place."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # No ".<queue>.msg" in it: no worker takes it, no queue-depth count sees it.
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            try:
                os.remove(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from error

    def _get(self, queue):
        """The next message of ``queue``; raises ``Empty`` when there is none. kombu's own
        ``_get`` removes each file before decoding it, so skipping a bad one loses only it."""
        while True:
            try:
                return super()._get(queue)
            except ValueError as error:  # json's JSONDecodeError, UnicodeDecodeError
                logger.error("skipped a message file of queue %s that does not decode: %s", queue, error)


class Transport(filesystem.Transport):
    Channel = Channel
