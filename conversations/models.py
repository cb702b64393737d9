from __future__ import annotations

import pgtrigger
from django.db import models
from django.utils.translation import gettext_lazy as _

from channels_im.models import Bot
from tenants.models import Tenant


class Conversation(models.Model):
    """A session: one user's (or one group's) thread with a bot, until it goes quiet."""

    # No index of their own: the indexes below lead with them (every write of a session,
    # one a message, would keep two more indexes).
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=_("tenant"),
        db_index=False,
    )
    bot = models.ForeignKey(
        Bot,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=_("bot"),
        db_index=False,
    )
    chat_id = models.CharField(_("chat"), max_length=200)
    # Empty when the bot shares one context per group.
    user_id = models.CharField(_("user"), max_length=200, blank=True)
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    last_activity_at = models.DateTimeField(_("last activity"))
    # Set by /reset: the next message opens a new conversation.
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta:
        indexes = [
            # Finding the open session of (bot, chat, user) is one index probe.
            models.Index(
                fields=["bot", "chat_id", "user_id", "-last_activity_at"], name="conv_session_idx"
            ),
            models.Index(fields=["tenant", "-last_activity_at"], name="conv_tenant_recent_idx"),
        ]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")

    def __str__(self) -> str:
        return f"{self.bot} · {self.chat_id} · {self.user_id or '*'}"


class Message(models.Model):
    """One line of the conversation log, and the unit of work of the reply pipeline.

    A user row carries the whole exchange's status, timings and token counts; the
    assistant row answering it carries the text and its delivery.
    """

    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        ANSWERING = "answering", _("Answering")
        ANSWERED = "answered", _("Answered")
        FAILED = "failed", _("Failed")
        RATE_LIMITED = "rate_limited", _("Rate limited")
        QUOTA_EXCEEDED = "quota_exceeded", _("Over quota")
        IGNORED = "ignored", _("Ignored")

    # Tenant and conversation have no index of their own: msg_tenant_recent_idx and
    # msg_context_idx lead with them. A question and its answer take about five writes
    # (two inserts, three updates), and two of the updates change an indexed column, so
    # every index takes a new entry (open_loop.py, pg_stat_user_tables).
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("tenant"),
        db_index=False,
    )
    bot = models.ForeignKey(
        Bot, on_delete=models.CASCADE, related_name="messages", verbose_name=_("bot")
    )
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("conversation"),
        db_index=False,
    )
    reply_to = models.OneToOneField(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reply",
        verbose_name=_("reply to"),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    content = models.TextField(_("content"))
    sender = models.CharField(_("sender"), max_length=200, blank=True)
    # NULL (not "") for rows without one, so the unique constraint ignores them.
    external_id = models.CharField(  # noqa: DJ001
        _("platform message id"), max_length=200, null=True, blank=True
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    error = models.TextField(_("error"), blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    # Which endpoint answered; `fallback`: the tenant's fallback model, the first having
    # failed for good (set when the question is handed over, so its retries ask it too).
    endpoint = models.CharField(_("model endpoint"), max_length=300, blank=True)
    fallback = models.BooleanField(_("fallback model"), default=False)
    # Why the model stopped ("stop", "length" …): a cut-off answer leaves a trace.
    done_reason = models.CharField(_("done reason"), max_length=32, blank=True)
    # What the platform module needs to answer (a message id, a webhook URL …).
    reply_context = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # A worker owns the row until then; past it the sweep may hand the row to another.
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    queue_wait_ms = models.PositiveIntegerField(_("queue wait (ms)"), null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(
        _("time to first token (ms)"), null=True, blank=True
    )
    total_ms = models.PositiveIntegerField(_("total time (ms)"), null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    # The endpoint reported no usage (some OpenAI-compatible servers): the counts are ours.
    tokens_estimated = models.BooleanField(_("tokens estimated"), default=False)
    # Its asker stopped the answer (/stop, or a recalled question): what the model wrote
    # until then is the answer.
    stopped = models.BooleanField(_("stopped"), default=False)
    # Counted against its quotas (conversations/quotas.py): once, whatever its claims.
    quota_counted = models.BooleanField(_("counted against quotas"), default=False, editable=False)
    # When retention cleared the texts (content, error, reply_context); the figures stay.
    redacted_at = models.DateTimeField(_("redacted"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Platforms retry callbacks; the second copy hits this and is dropped.
            models.UniqueConstraint(
                fields=["bot", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="unique_inbound_message_per_bot",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "-id"], name="msg_context_idx"),
            models.Index(fields=["tenant", "-created_at"], name="msg_tenant_recent_idx"),
            # Retention's scan: a redacted row leaves it, so each night's purge reads what
            # is still to do, not the whole redacted history again.
            models.Index(
                fields=["tenant", "created_at"],
                condition=models.Q(redacted_at__isnull=True),
                name="msg_retention_idx",
            ),
            models.Index(
                fields=["status", "claimed_until"],
                condition=models.Q(status__in=["queued", "answering"]),
                name="msg_pending_idx",
            ),
        ]
        triggers = [
            # A new question wakes the worker that publishes its task (dispatch.py), at
            # commit: the callback's request never talks to the broker.
            pgtrigger.Trigger(
                name="question_notify",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Q(new__role="user", new__status="queued"),
                # The channel: dispatch.CHANNEL.
                func="PERFORM pg_notify('im_question', NEW.id::text); RETURN NULL;",
            ),
        ]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        text = _("(redacted)") if self.redacted_at else self.content[:60]
        return f"{self.get_role_display()}: {text}"

    def new_reply(self, text: str, *, model: str = "") -> Message:
        """The assistant's row answering this one, queued for delivery and not stored yet."""
        return Message(
            tenant=self.tenant,
            bot=self.bot,
            conversation_id=self.conversation_id,
            reply_to=self,
            role=Message.Role.ASSISTANT,
            content=text,
            model=model,
            status=Message.Status.QUEUED,
        )


class BotDay(models.Model):
    """The questions one bot received on one day (in TIME_ZONE) that now have one status:
    the dashboard's rollup of the log. Recomputed from the log by rollup.py, never edited."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    # No index of its own: unique_bot_day_status's leads with it.
    bot = models.ForeignKey(
        Bot, on_delete=models.CASCADE, related_name="+", verbose_name=_("bot"), db_index=False
    )
    day = models.DateField(_("day"))
    status = models.CharField(_("status"), max_length=16, choices=Message.Status.choices)
    messages = models.PositiveIntegerField(_("messages"))
    prompt_tokens = models.PositiveBigIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.PositiveBigIntegerField(_("completion tokens"), default=0)
    # {"total_ms": [...], "first_token_ms": [...]}: questions per bucket of rollup.EDGES_MS,
    # for percentiles without reading the log. One field: the dashboard decodes one per row.
    histograms = models.JSONField(default=dict)
    last_at = models.DateTimeField(_("newest question"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bot", "day", "status"], name="unique_bot_day_status"),
        ]
        indexes = [models.Index(fields=["day"], name="botday_day_idx")]
        verbose_name = _("bot day")
        verbose_name_plural = _("bot days")

    def __str__(self) -> str:
        return f"{self.bot} · {self.day} · {self.status}: {self.messages}"


class UserDay(models.Model):
    """One person's questions to a tenant's bots on one day (in TIME_ZONE). Only the
    busiest rollup.USERS_PER_DAY of each tenant and day are kept, so the table stays small
    however many people ask."""

    # No index of its own: unique_user_day_sender's leads with it.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"), db_index=False
    )
    day = models.DateField(_("day"))
    sender = models.CharField(_("sender"), max_length=200)
    messages = models.PositiveIntegerField(_("messages"))
    tokens = models.PositiveBigIntegerField(_("tokens"), default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "sender"], name="unique_user_day_sender"
            ),
        ]
        indexes = [models.Index(fields=["day"], name="userday_day_idx")]
        verbose_name = _("user day")
        verbose_name_plural = _("user days")

    def __str__(self) -> str:
        return f"{self.sender} · {self.day}: {self.messages}"


class QuotaUse(models.Model):
    """What a tenant, one of its bots or one person has used of their quotas: questions
    sent to the model on `day` and tokens in the month starting `month` (the tenant's
    time zone). One row per subject, counted by quotas.py, which starts a day's or a
    month's count over when it finds the row's older."""

    class Scope(models.TextChoices):
        TENANT = "tenant", _("Tenant")
        BOT = "bot", _("Bot")
        USER = "user", _("User")

    # No index of its own: unique_quota_use_subject's leads with it.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"), db_index=False
    )
    scope = models.CharField(_("scope"), max_length=8, choices=Scope.choices)
    # The person's sender id for scope "user", the bot's id for "bot", "" for the tenant.
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    bot = models.ForeignKey(
        Bot,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("bot"),
    )
    day = models.DateField(_("day"))
    messages = models.PositiveIntegerField(_("messages that day"), default=0)
    month = models.DateField(_("month"))
    tokens = models.PositiveBigIntegerField(_("tokens that month"), default=0)
    # The part of `tokens` an OpenAI-compatible endpoint did not report: our estimate.
    estimated_tokens = models.PositiveBigIntegerField(_("of them estimated"), default=0)
    # When this person was last told they are over a daily, or a monthly, quota.
    told_day = models.DateField(_("told of a daily quota"), null=True, blank=True)
    told_month = models.DateField(_("told of a monthly quota"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "scope", "subject"], name="unique_quota_use_subject"
            ),
        ]
        verbose_name = _("quota use")
        verbose_name_plural = _("quota use")

    def __str__(self) -> str:
        return f"{self.scope} {self.subject}: {self.messages} on {self.day}, {self.tokens} tokens"


class ModelEndpoint(models.Model):
    """One model server as admission sees it (admission.endpoint_key): the row its
    admissions lock, and how long its answers took lately."""

    key = models.CharField(_("endpoint"), max_length=300, unique=True)
    # A moving average of the model's seconds per answer: the waiting's estimate.
    answer_seconds = models.FloatField(_("seconds per answer"), null=True, blank=True)
    # Each tenant's id -> the number of its latest answer to end here: whose turn is next.
    served = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("model endpoint")
        verbose_name_plural = _("model endpoints")

    def __str__(self) -> str:
        return self.key


class Admission(models.Model):
    """A question's place at its model endpoint: waiting its turn (no lease), or holding
    one of the endpoint's slots until `lease_until` (renewed while the answer streams).
    Gone once the model has answered."""

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="+")
    # Its question's, here so that an index finds each tenant's first questions in a long
    # line (admission.py reads no more of it). Empty only on rows older than the field.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, null=True, related_name="+", db_index=False
    )
    # Its tenant's max_concurrency: the endpoint's cap is the smallest of those present.
    cap = models.PositiveSmallIntegerField()
    lease_until = models.DateTimeField(null=True, blank=True)
    # When its asker was last told where it stands.
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("admission")
        verbose_name_plural = _("admissions")
        indexes = [
            models.Index(
                fields=["endpoint", "tenant", "message"],
                condition=models.Q(lease_until__isnull=True),
                name="admission_waiting_idx",
            ),
            models.Index(
                fields=["endpoint"],
                condition=models.Q(lease_until__isnull=False),
                name="admission_held_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint_id} · {self.message_id}"
