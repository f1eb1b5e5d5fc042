"""A real Celery worker process for tests: started against the test database (which the
test must share with it: ``django_db(transaction=True)``, or ``live_server``), with this
process publishing to the same broker."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from labeller.core.filesystem_broker import broker_transport_for
from workers.celery import app

REPO = Path(__file__).resolve().parents[1]


def worker_env(tmp_path: Path, broker_url: str, settings) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labeller.settings.dev",
        "LABELLER_DATA_DIR": str(tmp_path / "worker-var"),
        "LABELLER_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LABELLER_FEATURE_WEIGHTS": "none",
        "CELERY_BROKER_URL": broker_url,
        "LABELLER_TASK_VISIBILITY_TIMEOUT": "5",
        "PYTHONUNBUFFERED": "1",
    }
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        env["LABELLER_SQLITE_PATH"] = database["NAME"]
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    return env


def filesystem_broker_options(tmp_path: Path) -> dict:
    """Transport options for publishing where a worker started with ``worker_env(tmp_path, "filesystem://", …)``
    reads: its settings build the broker's folders from LABELLER_DATA_DIR."""
    queue = tmp_path / "worker-var" / "celery" / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(tmp_path / "worker-var" / "celery" / "processed"),
        # Exchange bindings live here; without it kombu writes them to ./control.
        "control_folder": str(tmp_path / "worker-var" / "celery" / "control"),
        "store_processed": False,
    }


@contextmanager
def running_worker(env: dict, log: Path, queues: str = "interactive,bulk", pool: str | None = "solo"):
    """``pool=None`` leaves the pool to the settings, as scripts/run does."""
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "--concurrency=1",
         *([f"--pool={pool}"] if pool else []),
         "-Q", queues, "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def publishing_to(broker_url: str, transport_options: dict):
    """Point this test process's Celery app at the worker's broker, then back."""
    # The app reads Django's CELERY_* names (namespace "CELERY"), so override those; the
    # cached connection pools must go too, or publishing keeps the old broker.
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.broker_transport)
    app.conf.update(CELERY_BROKER_URL=broker_url, CELERY_BROKER_TRANSPORT_OPTIONS=transport_options,
                    CELERY_BROKER_TRANSPORT=broker_transport_for(broker_url))
    app._pool, app.amqp._producer_pool = None, None
    try:
        yield
    finally:
        app.conf.update(CELERY_BROKER_URL=saved[0], CELERY_BROKER_TRANSPORT_OPTIONS=saved[1],
                        CELERY_BROKER_TRANSPORT=saved[2])
        app._pool, app.amqp._producer_pool = None, None


def wait_for(predicate, *, timeout: float, log: Path, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")
