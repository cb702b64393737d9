from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from . import quota_admin  # noqa: F401 - registers each person's quota use
        from .signals import question_granted

        question_granted.connect(_send_granted, dispatch_uid="conversations.send_granted")


def _send_granted(sender: object, message_ids: list[int], **kwargs: object) -> None:
    # Imported at the first grant, not at start-up: the tests set the metrics' directory up
    # before anything imports them.
    from .tasks import wake_granted

    wake_granted(message_ids)
