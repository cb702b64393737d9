from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsImConfig(AppConfig):
    name = "channels_im"
    verbose_name = _("IM channels")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from tenants.models import Tenant

        from .bot_cache import forget_all
        from .models import Bot

        for model in (Bot, Tenant):
            post_save.connect(forget_all, sender=model, dispatch_uid=f"bot-cache-{model.__name__}")
            post_delete.connect(forget_all, sender=model, dispatch_uid=f"bot-gone-{model.__name__}")
