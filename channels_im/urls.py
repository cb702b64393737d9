from django.urls import path

from .views import CallbackView

urlpatterns = [
    path("<str:platform>/<uuid:public_id>/", CallbackView.as_view(), name="callback"),
]
