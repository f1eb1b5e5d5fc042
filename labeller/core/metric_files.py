"""prometheus_client's multiprocess mode, shared by the web server and the Celery workers.

With PROMETHEUS_MULTIPROC_DIR set, every process writes its metrics to files in that folder
and /metrics (``labeller.core.metrics.process_registry``) adds them all up: gunicorn's
workers' request metrics and the Celery workers' task latencies alike.

prometheus_client names each file by process id. Under Compose the web server and each worker
run in their own container, each with its own process ids (PID 1, 7, 8...), over one shared
folder: two processes would write the same file. So the files are named by host name and
process id instead. ``use_shared_metric_files`` must run before the process makes its first
metric; the settings call it, and nothing makes metrics before the settings are read.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_identifier(host: str) -> str:
    # prometheus_client splits file names at "_" (type_mode_pid.db).
    return f"{host}-{os.getpid()}".replace("_", "-")


def use_shared_metric_files() -> None:
    """Name this process's metric files by host and pid; a no-op outside multiprocess mode."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    from prometheus_client import values

    host = socket.gethostname()
    values.ValueClass = values.MultiProcessValue(lambda: process_identifier(host))
