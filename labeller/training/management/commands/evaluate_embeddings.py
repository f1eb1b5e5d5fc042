"""Compare backbones x layers x pooling kernels on a project's confirmed crops."""

from django.core.management.base import BaseCommand, CommandError

from labeller.core.errors import DomainError
from labeller.projects.models import Project
from labeller.training.reports import embedding_report_create


class Command(BaseCommand):
    help = "Rank feature models by nearest-neighbour retrieval (recall@1, recall@5, mAP) on confirmed crops."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--project", required=True, type=int, help="Project id.")
        parser.add_argument("--backbones", nargs="*", help="Default: every supported backbone.")
        parser.add_argument("--kernels", nargs="*", type=int, default=[3, 4, 5])
        parser.add_argument("--per-label", type=int, default=50, help="Most crops used per label.")

    def handle(self, *args, org, project, backbones, kernels, per_label, **options):
        target = Project.objects.filter(organization__slug=org, pk=project).first()
        if target is None:
            raise CommandError(f"No project {project} in organisation {org!r}.")
        try:
            report = embedding_report_create(project=target, backbones=backbones, kernels=tuple(kernels), per_label=per_label)
        except DomainError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{report.crop_count} crops of {report.label_count} labels")
        self.stdout.write(f"{'backbone':<16}{'layer':<10}{'k':>3}{'dim':>6}{'R@1':>7}{'R@5':>7}{'mAP':>7}  weights")
        for row in report.rows:
            self.stdout.write(
                f"{row['backbone']:<16}{row['layer']:<10}{row['pool_kernel']:>3}{row['dim']:>6}"
                f"{row['recall_at_1']:>7.3f}{row['recall_at_5']:>7.3f}{row['mean_average_precision']:>7.3f}  "
                f"{row['weights_description']}"
            )
        self.stdout.write(f"report {report.pk}: GET /api/v1/orgs/{org}/embedding-reports/{report.pk} (grid: {report.grid or 'none'})")
