from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status

from labeller.annotations import import_jobs
from labeller.annotations.imports import DatasetFormat
from labeller.annotations.models import ImportJob, ImportKind
from labeller.annotations.selectors import import_job_get
from labeller.api.base import OrganizationAPIView
from labeller.projects.selectors import project_get
from labeller.tenants.models import Role


class DatasetImportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=DatasetFormat.choices)
    archive = serializers.FileField(
        help_text="A zip holding the dataset. COCO: one .json and the images; VOC: Annotations/*.xml and "
        "JPEGImages/; YOLO: images/, labels/ and classes.txt. Folders may sit anywhere inside the zip."
    )


class RecordErrorSerializer(serializers.Serializer):
    record = serializers.CharField()
    message = serializers.CharField()


class ImportJobSerializer(serializers.ModelSerializer):
    """An import's state: ``queued``, ``running`` (``progress`` 0-100, ``images_done`` of
    ``images_total``), ``done`` (the counts; ``frames_skipped``: images the project already had)
    or ``failed`` (``error`` says why in plain words; nothing was written)."""

    errors = RecordErrorSerializer(many=True, read_only=True, help_text="Records not imported, and why.")
    warnings = RecordErrorSerializer(many=True, read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "project", "kind", "format", "archive_name", "archive_bytes", "state", "progress", "error",
            "error_code", "images_total", "images_done", "frames_created", "frames_skipped", "boxes_created",
            "labels_created", "errors", "warnings", "created_at", "started_at", "heartbeat_at", "finished_at",
        ]
        read_only_fields = fields


class DatasetImportApi(OrganizationAPIView):
    @extend_schema(
        request={"multipart/form-data": DatasetImportRequestSerializer},
        responses={202: ImportJobSerializer},
        description="Import a labelled dataset in a bulk worker: images become frames, boxes confirmed "
        "annotations. Answers 202 with the import; follow it at imports/<id>. An unsafe or unreadable zip is "
        "a 400 at once; a malformed dataset fails the import and imports nothing; records with problems are "
        "listed and the rest imported. Images the project already has (same name and content) are skipped "
        "with their boxes, so importing a dataset twice adds nothing.",
    )
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        data = self.validated(DatasetImportRequestSerializer)
        job = import_jobs.import_start(
            project=project,
            actor=request.user,
            kind=ImportKind.DATASET,
            upload=data["archive"],
            archive_name=data["archive"].name,
            dataset_format=data["format"],
        )
        return self.respond(job, ImportJobSerializer, status.HTTP_202_ACCEPTED)


class ImportJobDetailApi(OrganizationAPIView):
    """One import's state and progress (dataset imports and zips of images alike)."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(responses=ImportJobSerializer)
    def get(self, request, org, pk):
        return self.respond(import_job_get(organization=self.organization, import_id=pk), ImportJobSerializer)
