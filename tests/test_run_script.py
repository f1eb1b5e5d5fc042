"""scripts/run as a person uses it: it serves the app, and closing its terminal (SIGHUP)
stops every process it started, so the next run finds the port free."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.worker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_closing_the_terminal_stops_everything_scripts_run_started(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}}
    env |= {"LABELLER_DATA_DIR": str(tmp_path / "data"), "LABELLER_PORT": str(port)}
    log = (tmp_path / "run.log").open("wb")
    # Its own session, as under a terminal: the HUP goes to scripts/run, never to pytest.
    # A terminal's process takes SIGHUP by default; restore that even when pytest itself runs
    # under nohup (a shell ignores a signal ignored on entry and cannot trap it).
    run = subprocess.Popen(["scripts/run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "scripts/run did not serve within 240 s"
            time.sleep(1)
        assert (tmp_path / "data" / "log" / "worker-interactive.log").exists()  # logs live with the data

        run.send_signal(signal.SIGHUP)

        run.wait(timeout=60)  # scripts/run itself ends (and is reaped) ...
        deadline = time.monotonic() + 30
        while group_alive(run.pid) and time.monotonic() < deadline:  # ... and so does all it started
            time.sleep(0.5)
        assert not group_alive(run.pid), subprocess.run(["ps", "-o", "pid,args", "-g", str(run.pid)], capture_output=True, text=True).stdout
        with socket.socket() as probe:
            # As gunicorn binds (SO_REUSEADDR): the healthz connections may linger in TIME_WAIT,
            # which does not stop the next scripts/run; a process still listening would.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()  # the port is free for the next run
    finally:
        if group_alive(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
        log.close()
