from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsImConfig(AppConfig):
    name = "channels_im"
    verbose_name = _("IM channels")
