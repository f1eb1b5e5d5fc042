"""The export task and beat's export check: thin wrappers over labeller.exports.services."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from labeller.exports.models import DatasetExport, ExportState
from workers import exports, maintenance
from workers.celery import BULK, app


def test_exports_run_on_the_bulk_queue_and_beat_checks_them():
    assert app.amqp.router.route({}, "workers.exports.run_export")["queue"].name == BULK
    app.loader.import_default_modules()
    assert "workers.exports.run_export" in app.tasks
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "workers.maintenance.check_exports" in scheduled


@pytest.mark.django_db
def test_the_task_returns_quietly_for_a_missing_export_and_runs_a_queued_one_once(tenant):
    exports.run_export(10**9)
    export = DatasetExport.objects.create(project=tenant.project, enqueued_at=timezone.now())
    exports.run_export(export.pk)
    export.refresh_from_db()
    assert export.state == ExportState.DONE
    finished = export.finished_at
    exports.run_export(export.pk)  # delivered again: already done
    export.refresh_from_db()
    assert export.finished_at == finished


@pytest.mark.django_db
def test_beat_fails_silent_exports_and_resends_lost_ones(tenant):
    long_ago = timezone.now() - timedelta(seconds=maintenance.EXPORT_SILENT_S + 60)
    silent = DatasetExport.objects.create(
        project=tenant.project, state=ExportState.RUNNING, started_at=long_ago, heartbeat_at=long_ago
    )
    lost = DatasetExport.objects.create(
        project=tenant.project, enqueued_at=timezone.now() - timedelta(seconds=maintenance.EXPORT_QUEUED_OVERDUE_S + 60)
    )
    with mock.patch("labeller.core.tasks.current_app.send_task") as send:
        assert maintenance.check_exports() == 1
    send.assert_called_once()
    assert send.call_args.args == ("workers.exports.run_export",) and send.call_args.kwargs["args"] == (lost.pk,)
    silent.refresh_from_db()
    assert silent.state == ExportState.FAILED
    assert silent.error.startswith("The export stopped: its worker went silent for over 5 minutes")
