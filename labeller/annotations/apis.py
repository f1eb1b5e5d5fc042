from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from labeller.annotations import idempotency, selectors, services
from labeller.annotations.filters import AnnotationFilter
from labeller.annotations.models import AnnotationStatus
from labeller.annotations.serializers import (
    AnnotationBulkResultSerializer,
    AnnotationBulkSerializer,
    AnnotationConfirmSerializer,
    AnnotationCreateSerializer,
    AnnotationEventSerializer,
    AnnotationSerializer,
    AnnotationUpdateSerializer,
    LabelSerializer,
    LabelUpdateSerializer,
)
from labeller.api.base import OrganizationAPIView
from labeller.api.fields import VersionSerializer
from labeller.media.selectors import frame_get
from labeller.projects.selectors import project_get
from labeller.tenants.models import Role

UNSET = services.UNSET


def _box(values: list[float]) -> services.Box:
    return services.Box(*values)


class LabelListApi(OrganizationAPIView):
    @extend_schema(responses=LabelSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.paginated(selectors.label_list(organization=self.organization, project=project), LabelSerializer)

    @extend_schema(request=LabelSerializer, responses={201: LabelSerializer})
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        data = self.validated(LabelSerializer)
        label = services.label_create(project=project, **data)
        return self.respond(label, LabelSerializer, status.HTTP_201_CREATED)


class LabelDetailApi(OrganizationAPIView):
    conflict_serializer_class = LabelSerializer

    @extend_schema(responses=LabelSerializer)
    def get(self, request, org, pk):
        return self.respond(selectors.label_get(organization=self.organization, label_id=pk), LabelSerializer)

    @extend_schema(request=LabelUpdateSerializer, responses=LabelSerializer)
    def patch(self, request, org, pk):
        label = selectors.label_get(organization=self.organization, label_id=pk)
        data = dict(self.validated(LabelUpdateSerializer))
        label = services.label_update(label=label, expected_version=data.pop("version"), **data)
        return self.respond(label, LabelSerializer)

    @extend_schema(responses={204: None})
    def delete(self, request, org, pk):
        services.label_delete(label=selectors.label_get(organization=self.organization, label_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID): a retry with the same key and body gets the first answer "
    "and creates nothing twice; the same key with another body answers 422.",
)


class AnnotationWriteApi(OrganizationAPIView):
    """Annotation writes are open to annotators; finer rules (others' work) live in the services."""

    write_role = Role.ANNOTATOR
    conflict_serializer_class = AnnotationSerializer

    def answer_once(self, frame, produce) -> Response:
        """``produce()`` -> (status, body), run once per Idempotency-Key when the request has one."""
        key = self.request.headers.get(idempotency.HEADER)
        if key is None:
            status_code, body = produce()
            return Response(body, status=status_code)
        answer = idempotency.idempotent_answer(
            user=self.request.user,
            key=idempotency.idempotency_key_check(key),
            frame=frame,
            fingerprint=idempotency.request_fingerprint(
                method=self.request.method, path=self.request.path, body=self.request.data
            ),
            produce=produce,
        )
        response = Response(answer.body, status=answer.status)
        if answer.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class FrameAnnotationListApi(AnnotationWriteApi):
    @extend_schema(
        parameters=[OpenApiParameter("status", str), OpenApiParameter("source", str)],
        responses=AnnotationSerializer(many=True),
    )
    def get(self, request, org, frame_id):
        frame = frame_get(organization=self.organization, frame_id=frame_id)
        queryset = selectors.annotation_list(organization=self.organization, frame_id=frame.pk)
        return self.paginated(self.filtered(AnnotationFilter, queryset), AnnotationSerializer)

    @extend_schema(
        request=AnnotationCreateSerializer, responses={201: AnnotationSerializer}, parameters=[IDEMPOTENCY_KEY]
    )
    def post(self, request, org, frame_id):
        frame = frame_get(organization=self.organization, frame_id=frame_id)
        data = self.validated(AnnotationCreateSerializer)

        def create():
            annotation = services.annotation_create(
                frame=frame,
                actor=request.user,
                box=_box(data["box"]),
                label=data["label_id"],
                status=AnnotationStatus.CONFIRMED if data["label_id"] else AnnotationStatus.PROPOSED,
            )
            return status.HTTP_201_CREATED, AnnotationSerializer(annotation, context=self.get_serializer_context()).data

        return self.answer_once(frame, create)


class FrameAnnotationBulkApi(AnnotationWriteApi):
    """Create, update or confirm many boxes of one frame in one request and one transaction."""

    @extend_schema(
        request=AnnotationBulkSerializer,
        responses={200: AnnotationBulkResultSerializer, 409: AnnotationBulkResultSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request, org, frame_id):
        frame = frame_get(organization=self.organization, frame_id=frame_id)
        data = self.validated(AnnotationBulkSerializer)
        changes = [_box_change(box) for box in data["boxes"]]

        def apply():
            outcomes = services.annotation_bulk_apply(
                organization=self.organization,
                frame=frame,
                actor=request.user,
                actor_role=Role(self.membership.role),
                changes=changes,
                all_or_nothing=data["all_or_nothing"],
            )
            return _bulk_status(outcomes, all_or_nothing=data["all_or_nothing"]), self._bulk_body(frame, outcomes)

        return self.answer_once(frame, apply)

    def _bulk_body(self, frame, outcomes) -> dict:
        context = self.get_serializer_context()
        results = []
        for index, outcome in enumerate(outcomes):
            result = {"index": index, "status": outcome.status}
            if outcome.annotation is not None:
                result["annotation"] = AnnotationSerializer(outcome.annotation, context=context).data
            else:
                result.update(code=outcome.code, detail=outcome.detail)
                if outcome.errors:
                    result["errors"] = outcome.errors
                if outcome.current is not None:
                    result["current"] = AnnotationSerializer(outcome.current, context=context).data
            results.append(result)
        saved = sum(outcome.saved for outcome in outcomes)
        return {"frame_id": frame.pk, "saved": saved, "refused": len(outcomes) - saved, "results": results}


def _box_change(item: dict) -> services.BoxChange:
    return services.BoxChange(
        action=services.BoxAction(item["action"]),
        annotation_id=item.get("id"),
        version=item.get("version"),
        box=_box(item["box"]) if "box" in item else None,
        label=item.get("label_id", UNSET),
    )


def _bulk_status(outcomes, *, all_or_nothing: bool) -> int:
    """200 with each box's own status; an all-or-nothing request that saved nothing takes its first refusal's."""
    if all_or_nothing:
        refused = [outcome.status for outcome in outcomes if not outcome.saved and outcome.status != 424]
        if refused:
            return refused[0]
    return status.HTTP_200_OK


class AnnotationDetailApi(AnnotationWriteApi):
    def _get(self, pk):
        return selectors.annotation_get(organization=self.organization, annotation_id=pk)

    @extend_schema(responses=AnnotationSerializer)
    def get(self, request, org, pk):
        return self.respond(self._get(pk), AnnotationSerializer)

    @extend_schema(request=AnnotationUpdateSerializer, responses=AnnotationSerializer)
    def patch(self, request, org, pk):
        annotation = self._get(pk)
        data = self.validated(AnnotationUpdateSerializer)
        annotation = services.annotation_update(
            annotation=annotation,
            actor=request.user,
            actor_role=Role(self.membership.role),
            expected_version=data["version"],
            box=_box(data["box"]) if "box" in data else None,
            label=data.get("label_id", UNSET),
        )
        return self.respond(annotation, AnnotationSerializer)

    @extend_schema(parameters=[OpenApiParameter("version", int, required=True)], responses={204: None})
    def delete(self, request, org, pk):
        annotation = self._get(pk)
        data = self.validated(VersionSerializer, data=request.query_params)
        services.annotation_delete(
            annotation=annotation,
            actor=request.user,
            actor_role=Role(self.membership.role),
            expected_version=data["version"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnnotationConfirmApi(AnnotationWriteApi):
    @extend_schema(request=AnnotationConfirmSerializer, responses=AnnotationSerializer)
    def post(self, request, org, pk):
        annotation = selectors.annotation_get(organization=self.organization, annotation_id=pk)
        data = self.validated(AnnotationConfirmSerializer)
        annotation = services.annotation_confirm(
            annotation=annotation,
            actor=request.user,
            actor_role=Role(self.membership.role),
            expected_version=data["version"],
            label=data.get("label_id", UNSET),
        )
        return self.respond(annotation, AnnotationSerializer)


class AnnotationRejectApi(AnnotationWriteApi):
    @extend_schema(request=VersionSerializer, responses=AnnotationSerializer)
    def post(self, request, org, pk):
        annotation = selectors.annotation_get(organization=self.organization, annotation_id=pk)
        data = self.validated(VersionSerializer)
        annotation = services.annotation_reject(
            annotation=annotation,
            actor=request.user,
            actor_role=Role(self.membership.role),
            expected_version=data["version"],
        )
        return self.respond(annotation, AnnotationSerializer)


class AnnotationHistoryApi(OrganizationAPIView):
    @extend_schema(responses=AnnotationEventSerializer(many=True))
    def get(self, request, org, pk):
        events = selectors.annotation_history(organization=self.organization, annotation_id=pk)
        if not events.exists():  # every annotation has a "created" event, deleted ones too
            raise NotFound("Not found.")
        return self.paginated(events, AnnotationEventSerializer)


class ProjectAnnotationListApi(OrganizationAPIView):
    @extend_schema(responses=AnnotationSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        queryset = selectors.annotation_list(organization=self.organization, project=project)
        return self.paginated(self.filtered(AnnotationFilter, queryset), AnnotationSerializer)
