"""The shapes of the conversation endpoints: what is sent in, and the message object."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from ..models import Conversation, Message

FINAL = (
    Message.Status.ANSWERED,
    Message.Status.FAILED,
    Message.Status.RATE_LIMITED,
    Message.Status.QUOTA_EXCEEDED,
    Message.Status.IGNORED,
)


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "中文",
            value={
                "text": "我们的报销流程是什么？",
                "user": "crm:10042",
                "conversation": "ticket-77",
            },
            request_only=True,
        ),
        OpenApiExample(
            "English",
            value={"text": "How do I reset my VPN?", "user": "crm:10042", "wait": 30},
            request_only=True,
        ),
    ]
)
class SendSerializer(serializers.Serializer):
    """`POST /api/v1/messages/`."""

    text = serializers.CharField(min_length=1, max_length=20_000, trim_whitespace=False)
    user = serializers.CharField(min_length=1, max_length=200)
    conversation = serializers.CharField(required=False, min_length=1, max_length=200)
    idempotency_key = serializers.CharField(required=False, min_length=1, max_length=100)
    wait = serializers.IntegerField(required=False, min_value=0, max_value=60, default=0)

    def validate_text(self, text: str) -> str:
        if not text.strip():
            raise serializers.ValidationError("Write a question: this is only blank space.")
        return text


class AnswerSerializer(serializers.Serializer):
    """The answer part of a message object (its figures are the question's)."""

    text = serializers.CharField()
    model = serializers.CharField()
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    queue_wait_ms = serializers.IntegerField(allow_null=True)
    first_token_ms = serializers.IntegerField(allow_null=True)
    total_ms = serializers.IntegerField(allow_null=True)


class MessageSerializer(serializers.ModelSerializer):
    """A question with its answer (`answer` is null until the answer exists)."""

    id = serializers.CharField(read_only=True)
    conversation = serializers.CharField(source="conversation_id", read_only=True)
    bot = serializers.CharField(source="bot.public_id", read_only=True)
    platform = serializers.CharField(source="bot.platform", read_only=True)
    user = serializers.CharField(source="sender", read_only=True)
    text = serializers.CharField(source="content", read_only=True)
    answer = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id", "conversation", "bot", "platform", "user", "text", "status",
            "created_at", "error", "answer",
        ]  # fmt: skip

    @extend_schema_field(AnswerSerializer(allow_null=True))
    def get_answer(self, question: Message) -> dict[str, Any] | None:
        reply = getattr(question, "reply", None) if question.pk else None
        if reply is None:
            return None
        return {
            "text": reply.content,
            "model": reply.model or question.model,
            "prompt_tokens": question.prompt_tokens,
            "completion_tokens": question.completion_tokens,
            "queue_wait_ms": question.queue_wait_ms,
            "first_token_ms": question.first_token_ms,
            "total_ms": question.total_ms,
        }


class TranscriptRowSerializer(serializers.ModelSerializer):
    """One row of a conversation's transcript: a question or an answer."""

    id = serializers.CharField(read_only=True)
    text = serializers.CharField(source="content")

    class Meta:
        model = Message
        fields = [
            "id", "role", "text", "sender", "status", "created_at", "model",
            "prompt_tokens", "completion_tokens", "total_ms", "error",
        ]  # fmt: skip


class ConversationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(read_only=True)
    bot = serializers.CharField(source="bot.public_id")
    platform = serializers.CharField(source="bot.platform")
    chat = serializers.CharField(source="chat_id")
    user = serializers.CharField(source="user_id")
    message_count = serializers.IntegerField()

    class Meta:
        model = Conversation
        fields = [
            "id", "bot", "platform", "chat", "user", "started_at", "last_activity_at",
            "closed_at", "message_count",
        ]  # fmt: skip


class ConversationDetailSerializer(ConversationSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages"]

    @extend_schema_field(TranscriptRowSerializer(many=True))
    def get_messages(self, conversation: Conversation) -> Any:
        rows = conversation.messages.order_by("id")
        return TranscriptRowSerializer(rows, many=True).data
