"""Every tenant route lives under orgs/<org>/ and is served by an OrganizationAPIView."""

from django.urls import include, path

from labeller.annotations import apis as annotation_apis
from labeller.annotations import import_apis, progress_apis, taxonomy_apis
from labeller.exports import apis as export_apis
from labeller.media import apis as media_apis
from labeller.media import image_apis
from labeller.projects import apis as project_apis
from labeller.tenants import apis as tenant_apis
from labeller.training import apis as training_apis

app_name = "api"

tenant_routes = [
    path("", tenant_apis.OrganizationDetailApi.as_view(), name="organization-detail"),
    path("members/", tenant_apis.MemberListApi.as_view(), name="member-list"),
    path("members/<int:pk>", tenant_apis.MemberDetailApi.as_view(), name="member-detail"),
    path("members/activity", tenant_apis.MemberActivityApi.as_view(), name="member-activity"),
    path("invitations/", tenant_apis.InvitationListApi.as_view(), name="invitation-list"),
    path("invitations/<int:pk>", tenant_apis.InvitationDetailApi.as_view(), name="invitation-detail"),
    path("projects/", project_apis.ProjectListApi.as_view(), name="project-list"),
    path("projects/<int:pk>", project_apis.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<int:project_id>/labels/", annotation_apis.LabelListApi.as_view(), name="label-list"),
    path("projects/<int:project_id>/labels/export", taxonomy_apis.TaxonomyExportApi.as_view(), name="taxonomy-export"),
    path("projects/<int:project_id>/labels/import", taxonomy_apis.TaxonomyImportApi.as_view(), name="taxonomy-import"),
    path("projects/<int:project_id>/labels/history", taxonomy_apis.LabelHistoryApi.as_view(), name="taxonomy-history"),
    path("projects/<int:project_id>/progress", progress_apis.ProjectProgressApi.as_view(), name="project-progress"),
    path("labels/<int:pk>/rename", taxonomy_apis.LabelRenameApi.as_view(), name="label-rename"),
    path("labels/<int:pk>/move", taxonomy_apis.LabelMoveApi.as_view(), name="label-move"),
    path("labels/<int:pk>/merge", taxonomy_apis.LabelMergeApi.as_view(), name="label-merge"),
    path("projects/<int:project_id>/videos/", media_apis.VideoListApi.as_view(), name="video-list"),
    path("projects/<int:project_id>/uploads/", media_apis.UploadListApi.as_view(), name="upload-list"),
    path("uploads/<int:pk>", media_apis.UploadDetailApi.as_view(), name="upload-detail"),
    path("uploads/<int:pk>/finish", media_apis.UploadFinishApi.as_view(), name="upload-finish"),
    path("videos/<int:pk>/reingest", media_apis.VideoReingestApi.as_view(), name="video-reingest"),
    path("projects/<int:project_id>/frames/", media_apis.FrameListApi.as_view(), name="frame-list"),
    path("projects/<int:project_id>/annotations/", annotation_apis.ProjectAnnotationListApi.as_view(), name="project-annotation-list"),
    path("projects/<int:project_id>/queue/next", media_apis.QueueNextApi.as_view(), name="queue-next"),
    path("projects/<int:project_id>/queue/peek", media_apis.QueuePeekApi.as_view(), name="queue-peek"),
    path("labels/<int:pk>", annotation_apis.LabelDetailApi.as_view(), name="label-detail"),
    path("videos/<int:pk>", media_apis.VideoDetailApi.as_view(), name="video-detail"),
    path("videos/<int:pk>/shots/", media_apis.VideoShotListApi.as_view(), name="video-shot-list"),
    path("videos/<int:pk>/file", media_apis.VideoFileApi.as_view(), name="video-file"),
    path("frames/<int:pk>", media_apis.FrameDetailApi.as_view(), name="frame-detail"),
    path("frames/<int:pk>/image", media_apis.FrameImageApi.as_view(), name="frame-image"),
    path("frames/<int:pk>/thumbnail", media_apis.FrameThumbnailApi.as_view(), name="frame-thumbnail"),
    path("frames/<int:pk>/complete", media_apis.FrameCompleteApi.as_view(), name="frame-complete"),
    path("frames/<int:pk>/reopen", media_apis.FrameReopenApi.as_view(), name="frame-reopen"),
    path("frames/<int:pk>/release", media_apis.FrameReleaseApi.as_view(), name="frame-release"),
    path("frames/<int:frame_id>/annotations/", annotation_apis.FrameAnnotationListApi.as_view(), name="frame-annotation-list"),
    path("frames/<int:frame_id>/annotations/bulk", annotation_apis.FrameAnnotationBulkApi.as_view(), name="frame-annotation-bulk"),
    path("annotations/<int:pk>", annotation_apis.AnnotationDetailApi.as_view(), name="annotation-detail"),
    path("annotations/<int:pk>/confirm", annotation_apis.AnnotationConfirmApi.as_view(), name="annotation-confirm"),
    path("annotations/<int:pk>/reject", annotation_apis.AnnotationRejectApi.as_view(), name="annotation-reject"),
    path("annotations/<int:pk>/history", annotation_apis.AnnotationHistoryApi.as_view(), name="annotation-history"),
    path("frames/<int:pk>/suggest-labels", training_apis.SuggestLabelsApi.as_view(), name="frame-suggest-labels"),
    path("projects/<int:project_id>/stats/me", training_apis.AnnotatorStatsApi.as_view(), name="project-stats-me"),
    path("projects/<int:project_id>/proposal-policy", training_apis.ProposalPolicyApi.as_view(), name="proposal_policy"),
    path("projects/<int:project_id>/embedding-reports/", training_apis.EmbeddingReportListApi.as_view(), name="embedding_report-list"),
    path("embedding-reports/<int:pk>", training_apis.EmbeddingReportDetailApi.as_view(), name="embedding_report-detail"),
    path("embedding-reports/<int:pk>/grid", training_apis.EmbeddingReportGridApi.as_view(), name="embedding_report-grid"),
    path("projects/<int:project_id>/training-runs/", training_apis.TrainingRunListApi.as_view(), name="training_run-list"),
    path("training-runs/<int:pk>", training_apis.TrainingRunDetailApi.as_view(), name="training_run-detail"),
    path("training-runs/<int:pk>/cancel", training_apis.TrainingRunCancelApi.as_view(), name="training_run-cancel"),
    path("training-runs/<int:pk>/promote", training_apis.TrainingRunPromoteApi.as_view(), name="training_run-promote"),
    path("projects/<int:project_id>/learning", training_apis.ProjectLearningApi.as_view(), name="project-learning"),
    # -- images and dataset imports --
    path("projects/<int:project_id>/images/", image_apis.ImageUploadApi.as_view(), name="image-upload"),
    path("projects/<int:project_id>/imports/", import_apis.DatasetImportApi.as_view(), name="dataset-import"),
    path("imports/<int:pk>", import_apis.ImportJobDetailApi.as_view(), name="import-detail"),
    # -- end images and dataset imports --
    path("projects/<int:project_id>/exports/", export_apis.ExportListApi.as_view(), name="export-list"),
    path("exports/<int:pk>", export_apis.ExportDetailApi.as_view(), name="export-detail"),
    path("exports/<int:pk>/file", export_apis.ExportFileApi.as_view(), name="export-file"),
]

urlpatterns = [
    path("me", tenant_apis.MeApi.as_view(), name="me"),
    path("token", tenant_apis.TokenApi.as_view(), name="token"),
    path("invitations/<str:token>", tenant_apis.InvitationTokenApi.as_view(), name="invitation-token"),
    path("invitations/<str:token>/accept", tenant_apis.InvitationAcceptApi.as_view(), name="invitation-accept"),
    path("orgs/<slug:org>/", include(tenant_routes)),
]
