from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status

from labeller.annotations.imports import DatasetFormat, dataset_import_archive
from labeller.api.base import OrganizationAPIView
from labeller.media.uploaded import local_upload_path
from labeller.projects.selectors import project_get


class DatasetImportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=DatasetFormat.choices)
    archive = serializers.FileField(
        help_text="A zip holding the dataset. COCO: one .json and the images; VOC: Annotations/*.xml and "
        "JPEGImages/; YOLO: images/, labels/ and classes.txt. Folders may sit anywhere inside the zip."
    )


class RecordErrorSerializer(serializers.Serializer):
    record = serializers.CharField()
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
    images = serializers.IntegerField()
    boxes = serializers.IntegerField()
    labels_created = serializers.IntegerField()
    errors = RecordErrorSerializer(many=True)
    warnings = RecordErrorSerializer(many=True)


class DatasetImportApi(OrganizationAPIView):
    @extend_schema(
        request={"multipart/form-data": DatasetImportRequestSerializer},
        responses={201: ImportReportSerializer},
        description="Import a labelled dataset: images become frames, boxes confirmed annotations. A malformed "
        "file imports nothing (400); records with problems are listed in the report and the rest imported.",
    )
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        data = self.validated(DatasetImportRequestSerializer)
        with local_upload_path(data["archive"]) as path:
            report = dataset_import_archive(
                project=project,
                actor=request.user,
                archive=path,
                archive_name=data["archive"].name,
                dataset_format=data["format"],
            )
        return self.respond(report, ImportReportSerializer, status.HTTP_201_CREATED)
