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
        from .platforms import PLATFORMS, adapter_class

        for model in (Bot, Tenant):
            post_save.connect(forget_all, sender=model, dispatch_uid=f"bot-cache-{model.__name__}")
            post_delete.connect(forget_all, sender=model, dispatch_uid=f"bot-gone-{model.__name__}")
        # Every platform module now, in the one thread that starts the process: a web
        # process's first callbacks run side by side in threads, and two threads importing
        # platform packages that share a module (WeCom's envelope) can deadlock in Python's
        # import locks, the loser answering 500.
        for platform in PLATFORMS:
            adapter_class(platform)
