from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from labeller.core.health import healthz
from labeller.core.metrics import metrics

# Swagger UI comes from drf-spectacular-sidecar's static files and its start-up script from a
# second request to the same view (the split view), so scripts stay 'self' only. Its page
# has an inline <style> and its CSS draws icons as data: SVGs: allowed on this page alone.
api_docs = csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["data:"]})(
    SpectacularSwaggerSplitView.as_view(url_name="schema")
)

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),  # 404 unless LABELLER_METRICS=1
    path("admin/", admin.site.urls),
    path("api/v1/", include("labeller.api.urls", namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("", include("frontend.urls")),
]
