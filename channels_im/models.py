from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.selftest import all_passed
from tenants.fields import EncryptedJSONField
from tenants.models import MAX_MESSAGES_PER_DAY, MAX_TOKENS_PER_MONTH, Tenant

from .platforms import adapter_class, platform_choices

if TYPE_CHECKING:
    from .platforms.base import PlatformAdapter


class Bot(models.Model):
    """One bot on one platform; the platform calls us at /callbacks/<platform>/<public_id>/."""

    # No index of its own: unique_bot_name_per_tenant's leads with it.
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="bots",
        verbose_name=_("tenant"),
        db_index=False,
    )
    platform = models.CharField(_("platform"), max_length=32, choices=platform_choices)
    name = models.CharField(_("name"), max_length=100)
    public_id = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    credentials = EncryptedJSONField(_("credentials"), blank=True, default=dict)
    system_prompt = models.TextField(
        _("system prompt override"),
        blank=True,
        help_text=_("Empty: the tenant's system prompt."),
    )
    shared_group_session = models.BooleanField(
        _("one shared context per group"),
        default=False,
        help_text=_("Off: every member of a group has their own conversation with the bot."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Caps on this bot alone, besides its tenant's quotas (conversations/quotas.py).
    quota_messages_per_day = models.PositiveIntegerField(
        _("messages per day (bot)"),
        default=0,
        validators=[MaxValueValidator(MAX_MESSAGES_PER_DAY)],
        help_text=_("Questions sent to the model a day, through this bot; 0: no quota."),
    )
    quota_tokens_per_month = models.PositiveBigIntegerField(
        _("tokens per month (bot)"),
        default=0,
        validators=[MaxValueValidator(MAX_TOKENS_PER_MONTH)],
        help_text=_("Prompt and answer tokens a month, through this bot; 0: no quota."),
    )
    last_error = models.TextField(_("last error"), blank=True, editable=False)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(
        _("last answer delivered"), null=True, blank=True, editable=False
    )
    # The last self-test (channels_im/selftest.py): its findings, as common.selftest
    # stores them, and when it ran.
    self_test = models.JSONField(_("self-test"), default=list, blank=True, editable=False)
    self_tested_at = models.DateTimeField(
        _("self-tested at"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_bot_name_per_tenant"),
            # The REST API's messages all travel one bot per tenant (conversations/api).
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(platform="api"), name="one_api_bot_per_tenant"
            ),
        ]
        verbose_name = _("bot")
        verbose_name_plural = _("bots")

    def __str__(self) -> str:
        return self.name

    @property
    def callback_path(self) -> str:
        return reverse("callback", args=[self.platform, self.public_id])

    @property
    def callback_url(self) -> str:
        return settings.PUBLIC_BASE_URL + self.callback_path

    @property
    def adapter(self) -> PlatformAdapter:
        """This bot's platform module (a PlatformAdapter subclass), bound to it."""
        return adapter_class(self.platform)(self)

    @property
    def self_test_passed(self) -> bool | None:
        """None until the bot is self-tested; then whether no check of the last test failed."""
        return None if self.self_tested_at is None else all_passed(self.self_test)

    def record_error(self, error: str) -> None:
        """Keep the latest failure on the row so the admin can filter on it."""
        now = timezone.now()
        Bot.objects.filter(pk=self.pk).update(last_error=error[:2000], last_error_at=now)
        self.last_error, self.last_error_at = error, now

    def record_success(self) -> None:
        """Note that an answer reached the platform. Written at most once a minute unless
        an error came since: a bot is failing while its last error is newer than this."""
        now = timezone.now()
        at = connection.ops.adapt_datetimefield_value
        # Raw SQL: it runs for every answer, and building the ORM's UPDATE took longer
        # than the database took to run it.
        sql = f"""
            UPDATE {Bot._meta.db_table} SET last_success_at = %s WHERE id = %s AND (
                last_success_at IS NULL OR last_success_at < %s
                OR last_error_at >= last_success_at
            )
        """  # noqa: S608 - a constant table name, values as parameters
        with connection.cursor() as cursor:
            cursor.execute(sql, [at(now), self.pk, at(now - timedelta(minutes=1))])
