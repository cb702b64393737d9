"""`{% transcript %}`: a conversation's transcript on its admin page
(templates/admin/conversations/conversation/change_form.html)."""

from typing import Any

from django import template

from conversations import transcript as transcripts

register = template.Library()


@register.inclusion_tag("admin/conversations/transcript.html", takes_context=True)
def transcript(context: template.Context) -> dict[str, Any]:
    """The page of the conversation's exchanges that the request's query asks for."""
    conversation = context["original"]
    return {
        "conversation": conversation,
        "transcript": transcripts.page(conversation, context["request"].GET),
    }
