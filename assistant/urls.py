from django.contrib import admin
from django.urls import include, path

from common.metrics.views import metrics
from conversations.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("callbacks/", include("channels_im.urls")),
    path("api/v1/", include("assistant.api_urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
