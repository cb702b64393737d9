"""Bot commands staff can type instead of a question, in English or Chinese."""

from __future__ import annotations

from collections.abc import Callable

from django.utils.translation import gettext, override

from . import sessions, stops
from .models import Message

RESET = ("/reset", "/new", "/重置", "重置", "/清空")
HELP = ("/help", "/帮助", "帮助", "/?")
STOP = ("/stop", "/停止", "停止")


def command_for(text: str) -> Callable[[Message], str] | None:
    """The handler of the command `text` is, or None for an ordinary question."""
    word = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    if word in RESET:
        return reset
    if word in HELP:
        return help_text
    if word in STOP:
        return stop
    return None


def reset(message: Message) -> str:
    """Close the session: the next message starts a new conversation with no history."""
    sessions.close(message.conversation_id)
    with override(message.tenant.language):
        return gettext("Done: I have forgotten our conversation. Ask me anything.")


def stop(message: Message) -> str:
    """Stop the answers being written for this person in this chat (stops.py); what was
    written so far stays, marked as stopped."""
    stopped = stops.stop_asker(message)
    with override(message.tenant.language):
        if stopped:
            return gettext("Stopped.")
        return gettext("Nothing to stop: no answer is being written for you.")


def help_text(message: Message) -> str:
    tenant = message.tenant
    with override(tenant.language):
        lines = [
            gettext("Ask me anything; in a group chat, @mention me first."),
            gettext(
                "I remember the last %(rounds)d questions of our conversation until "
                "%(minutes)d minutes of silence."
            )
            % {
                "rounds": tenant.context_max_rounds,
                "minutes": tenant.session_timeout_seconds // 60,
            },
            gettext("/reset (重置): forget the conversation and start again."),
            gettext("/stop (停止): stop the answer being written; what it says so far stays."),
            gettext("/help (帮助): show this message."),
        ]
        if tenant.user_rate_limit_per_minute:
            lines.append(
                gettext("Limit: %(n)d messages per minute per person.")
                % {"n": tenant.user_rate_limit_per_minute}
            )
        lines.append(gettext("Model: %(model)s") % {"model": tenant.model})
    return "\n".join(lines)
