"""Task latency recorded in a real worker process reaches web's /metrics through the shared
multiprocess folder (PROMETHEUS_MULTIPROC_DIR), as scripts/run and compose.yaml set it up."""

import socket

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from labeller.core.tasks import publish
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env

TASK = "workers.maintenance.check_exports"  # routed to the interactive queue; a no-op on an empty database


def scrape(settings) -> dict:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}"})
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def counts(families, name) -> dict:
    if name not in families:
        return {}
    return {(s.labels["queue"], s.labels["task"]): s.value for s in families[name].samples
            if s.name == f"{name}_count"}


@pytest.mark.django_db(transaction=True)
def test_a_real_workers_task_latency_reaches_metrics_through_the_shared_folder(tmp_path, settings, monkeypatch):
    folder = tmp_path / "metrics"
    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, "t"
    env = worker_env(tmp_path, "filesystem://", settings) | {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    log = tmp_path / "worker.log"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))  # this process is web: it reads the folder
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)), running_worker(env, log):
        assert publish(TASK)
        assert publish(TASK)
        wait_for(lambda: counts(scrape(settings), "labeller_task_run_seconds").get(("interactive", TASK)) == 2,
                 timeout=120, log=log, what="the worker's task metrics")

    families = scrape(settings)
    assert counts(families, "labeller_task_queue_wait_seconds") == {("interactive", TASK): 2}
    host = socket.gethostname().replace("_", "-")
    assert any(p.name.startswith(f"histogram_{host}-") for p in folder.glob("*.db")), \
        "metric files are named by host and pid, so containers sharing the folder never share a file"
    finished = {(s.labels["queue"], s.labels["state"]): s.value for s in families["labeller_tasks_finished"].samples
                if s.name == "labeller_tasks_finished_total" and s.labels["task"] == TASK}
    assert finished == {("interactive", "SUCCESS"): 2}
