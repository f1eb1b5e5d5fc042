"""Create the demo organisation, its admin and annotator, a project with a taxonomy,
and a small synthetic video whose ingest runs in the Celery worker. Idempotent."""

import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from labeller.annotations.models import Label
from labeller.annotations.services import label_create
from labeller.media.ingest import video_create_from_file
from labeller.media.models import Video
from labeller.projects.models import Project
from labeller.projects.services import project_create
from labeller.tenants.models import Membership, Organization, Role
from proposals.synthetic import DEFAULT_CLASSES, write_synthetic_video

DEMO_USERS = {  # username: (password, role); demo only, printed at start-up
    "admin": ("labeller-admin", Role.ADMIN),
    "annotator": ("labeller-annotator", Role.ANNOTATOR),
}
TAXONOMY_COLOURS = ["#ef4444", "#eab308", "#a855f7", "#f59e0b", "#22c55e", "#06b6d4"]
DEMO_VIDEO_NAME = "demo-counter.mp4"


class Command(BaseCommand):
    help = "Create (once) the demo organisation, users, project, taxonomy and video."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the app will be served.")

    def handle(self, *args, url, **options):
        with transaction.atomic():
            organization, _ = Organization.objects.get_or_create(slug="demo", defaults={"name": "Demo Foods"})
            for username, (password, role) in DEMO_USERS.items():
                user, created = get_user_model().objects.get_or_create(username=username)
                if created:
                    user.set_password(password)
                    # The demo admin also operates the site (Django admin at /admin/).
                    user.is_staff = user.is_superuser = role == Role.ADMIN
                    user.save()
                Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": role})
            project = Project.objects.filter(organization=organization, name="Counter demo").first()
            if project is None:
                project = project_create(organization=organization, name="Counter demo", description="Synthetic counter-camera video.")
            for position, name in enumerate(DEFAULT_CLASSES):
                if not Label.objects.filter(project=project, name=name).exists():
                    label_create(project=project, name=name, color=TAXONOMY_COLOURS[position % len(TAXONOMY_COLOURS)], hotkey=str(position + 1))

        if not Video.objects.filter(project=project, original_name=DEMO_VIDEO_NAME).exists():
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / DEMO_VIDEO_NAME
                write_synthetic_video(path, seconds=12, fps=25, width=640, height=360, n_shots=3, seed=7)
                video_create_from_file(
                    project=project, actor=organization.memberships.get(role=Role.ADMIN).user, path=path, original_name=DEMO_VIDEO_NAME
                )
            self.stdout.write("Demo video created; the Celery worker ingests it in the background.")

        self.stdout.write(self.style.SUCCESS(f"\nLabeller demo ready at {url}"))
        for username, (password, role) in DEMO_USERS.items():
            self.stdout.write(f"  {role.label:<10} login: {username} / {password}")
        self.stdout.write(f"  API docs: {url}api/docs/   Django admin: {url}admin/")
