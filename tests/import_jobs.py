"""Running the imports a request queued, in this process, as the bulk worker would."""

from django.test.testcases import TestCase

from labeller.annotations.import_jobs import import_run
from labeller.annotations.models import ImportJob


def run_import(client, job: dict) -> dict:
    """Run the queued import ``job`` (a 202 answer's body) and return its status as the API shows it.

    The on-commit callbacks of the run (deleting the stored archive, telling the learning loop)
    run too, as they would in a worker.
    """
    with TestCase.captureOnCommitCallbacks(execute=True):
        import_run(import_id=job["id"])
    response = client.get(status_path(job))
    assert response.status_code == 200, response.content
    return response.json()


def status_path(job: dict) -> str:
    organization = ImportJob.objects.select_related("project__organization").get(pk=job["id"]).project.organization
    return f"/api/v1/orgs/{organization.slug}/imports/{job['id']}"


def as_report(status: dict) -> dict:
    """A finished dataset import's counts in the words of the synchronous import's old report."""
    assert status["state"] == "done", status
    return {
        "images": status["frames_created"],
        "boxes": status["boxes_created"],
        "labels_created": status["labels_created"],
        "errors": status["errors"],
        "warnings": status["warnings"],
    }
