import pytest
from django.core.management import call_command

from labeller.annotations.models import Label
from labeller.media.models import Frame
from labeller.training.models import EmbeddingReport
from labeller.training.reports import embedding_report_create
from tests.conftest import api_path
from tests.labeller.training.test_learning_loop import confirm_ground_truth
from tests.pipeline import ingest_synthetic, make_synthetic

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("report"), seconds=6, n_shots=2, seed=21, objects_per_shot=3)


@pytest.fixture
def labelled_project(tenant, synthetic):
    for name in synthetic.classes:
        Label.objects.get_or_create(project=tenant.project, name=name)
    video = ingest_synthetic(tenant.project, tenant.admin, synthetic)
    for frame in Frame.objects.filter(video=video):
        confirm_ground_truth(frame, synthetic, tenant.annotator)
    return tenant.project


def test_the_report_ranks_feature_models_and_draws_the_confusions(tenant, labelled_project):
    report = embedding_report_create(project=labelled_project, backbones=["alexnet"], kernels=(3, 4))
    assert [(r["backbone"], r["pool_kernel"]) for r in report.rows] in (
        [("alexnet", 3), ("alexnet", 4)], [("alexnet", 4), ("alexnet", 3)],
    )
    alexnet_k3 = next(r for r in report.rows if r["pool_kernel"] == 3)
    assert alexnet_k3["dim"] == 1024 and alexnet_k3["is_random"] is True
    for row in report.rows:
        assert 0 <= row["recall_at_1"] <= row["recall_at_5"] <= 1 and 0 <= row["mean_average_precision"] <= 1
    assert report.label_count >= 2 and report.grid

    listing = tenant.client("admin").get(api_path(tenant, f"projects/{labelled_project.pk}/embedding-reports/")).json()
    assert [r["id"] for r in listing["results"]] == [report.pk]
    grid = tenant.client("admin").get(listing["results"][0]["grid_url"])
    assert grid.status_code == 200 and b"".join(grid.streaming_content).startswith(b"\x89PNG")
    assert tenant.client("annotator").get(api_path(tenant, f"embedding-reports/{report.pk}")).status_code == 403


def test_the_management_command_prints_the_table(tenant, labelled_project, capsys):
    call_command("evaluate_embeddings", "--org", tenant.organization.slug, "--project", str(labelled_project.pk),
                 "--backbones", "alexnet", "squeezenet1_1", "--kernels", "3")
    out = capsys.readouterr().out
    assert "alexnet" in out and "squeezenet1_1" in out and "R@1" in out
    assert EmbeddingReport.objects.filter(project=labelled_project).count() == 1


def test_too_few_crops_is_a_clear_error(tenant):
    with pytest.raises(Exception, match="at least two labels"):
        embedding_report_create(project=tenant.project)
