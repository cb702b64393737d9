"""The REST API's routes (spec/api.md), mounted at /api/v1/."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from channels_im.api import BotViewSet
from common.api import awaiting, not_found
from conversations.api.logs import ConversationDetail, ConversationList, MessageExport
from conversations.api.messages import MessageStreamView, MessagesView, MessageView
from conversations.api.usage import UsageView
from tenants import api_schema  # noqa: F401 - registers the schema's auth extensions
from tenants.api import TenantView

bots = SimpleRouter(use_regex_path=False)
bots.register("bots", BotViewSet, basename="bot")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # django-stubs types no async view.
    path("messages/", awaiting(MessagesView.as_view()), name="api-messages"),  # type: ignore[arg-type]
    path("messages/export/", MessageExport.as_view(), name="api-message-export"),
    path("messages/<int:pk>/", MessageView.as_view(), name="api-message"),
    path(
        "messages/<int:pk>/stream/",
        awaiting(MessageStreamView.as_view()),  # type: ignore[arg-type]
        name="api-message-stream",
    ),
    path("conversations/", ConversationList.as_view(), name="api-conversations"),
    path("conversations/<int:pk>/", ConversationDetail.as_view(), name="api-conversation"),
    path("usage/", UsageView.as_view(), name="api-usage"),
    path("tenant/", TenantView.as_view(), name="api-tenant"),
    *bots.urls,
    re_path(r"^", not_found, name="api-not-found"),  # in the API's error shape, not HTML
]
