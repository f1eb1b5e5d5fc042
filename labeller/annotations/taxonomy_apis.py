"""Routes that reshape a project's taxonomy (admins), its JSON file and its history."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from labeller.annotations import selectors, taxonomy
from labeller.annotations.serializers import (
    LabelEventSerializer,
    LabelMergeResultSerializer,
    LabelMergeSerializer,
    LabelMoveSerializer,
    LabelRenameSerializer,
    LabelSerializer,
    TaxonomyImportResultSerializer,
    TaxonomySerializer,
)
from labeller.api.base import OrganizationAPIView
from labeller.projects.selectors import project_get

STALE = OpenApiResponse(description="The label changed since the version sent (the answer holds it as it is now).")


class LabelRenameApi(OrganizationAPIView):
    conflict_serializer_class = LabelSerializer

    @extend_schema(request=LabelRenameSerializer, responses={200: LabelSerializer, 409: STALE})
    def post(self, request, org, pk):
        label = selectors.label_get(organization=self.organization, label_id=pk)
        data = self.validated(LabelRenameSerializer)
        label = taxonomy.label_rename(
            label=label, name=data["name"], expected_version=data["version"], actor=request.user
        )
        return self.respond(label, LabelSerializer)


class LabelMoveApi(OrganizationAPIView):
    conflict_serializer_class = LabelSerializer

    @extend_schema(request=LabelMoveSerializer, responses={200: LabelSerializer, 409: STALE})
    def post(self, request, org, pk):
        label = selectors.label_get(organization=self.organization, label_id=pk)
        data = self.validated(LabelMoveSerializer)
        label = taxonomy.label_move(
            label=label, parent=data["parent_id"], expected_version=data["version"], actor=request.user
        )
        return self.respond(label, LabelSerializer)


class LabelMergeApi(OrganizationAPIView):
    conflict_serializer_class = LabelSerializer

    @extend_schema(
        request=LabelMergeSerializer,
        responses={200: LabelMergeResultSerializer, 409: OpenApiResponse(description="Stale version, or a label of the merge changed meanwhile.")},
    )
    def post(self, request, org, pk):
        source = selectors.label_get(organization=self.organization, label_id=pk)
        data = self.validated(LabelMergeSerializer)
        result = taxonomy.label_merge(
            source=source, target=data["into_id"], expected_version=data["version"], actor=request.user
        )
        return self.respond(result, LabelMergeResultSerializer)


class TaxonomyExportApi(OrganizationAPIView):
    @extend_schema(responses=TaxonomySerializer)
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        document = selectors.taxonomy_document(organization=self.organization, project=project)
        response = Response(document)
        response["Content-Disposition"] = f'attachment; filename="taxonomy-project-{project.pk}.json"'
        return response


class TaxonomyImportApi(OrganizationAPIView):
    @extend_schema(request=TaxonomySerializer, responses=TaxonomyImportResultSerializer)
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        data = self.validated(TaxonomySerializer)
        entries = [taxonomy.TaxonomyEntry(**entry) for entry in data["labels"]]
        result = taxonomy.taxonomy_import(project=project, entries=entries, actor=request.user)
        return self.respond(result, TaxonomyImportResultSerializer)


class LabelHistoryApi(OrganizationAPIView):
    @extend_schema(responses=LabelEventSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.paginated(
            selectors.label_history(organization=self.organization, project=project), LabelEventSerializer
        )
