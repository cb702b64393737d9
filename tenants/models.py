from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Migrations name tenants.models.validate_endpoint.
from .validators import validate_endpoint, validate_keep_alive, validate_time_zone

# Quotas beyond these are typos: ten million questions a day, a trillion tokens a month.
MAX_MESSAGES_PER_DAY = 10_000_000
MAX_TOKENS_PER_MONTH = 10**12

# The dashboard's rollup recomputes today's and yesterday's figures from the log
# (conversations/rollup.py, RECENT_DAYS); a shorter retention would delete rows under it and
# shrink figures already shown. Two days back from now always lies before yesterday began.
MIN_RETENTION_DAYS = 2
MAX_RETENTION_DAYS = 36_500


def validate_retention_days(value: int) -> None:
    """0 (keep forever), or MIN_RETENTION_DAYS to MAX_RETENTION_DAYS."""
    if value != 0 and not MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS:
        raise ValidationError(
            _(
                "Use 0 to keep messages forever, or %(low)d to %(high)d days: the dashboard "
                "recomputes today's and yesterday's figures from the messages, so they must "
                "be kept at least %(low)d days."
            )
            % {"low": MIN_RETENTION_DAYS, "high": MAX_RETENTION_DAYS}
        )


class Tenant(models.Model):
    """A company or department: its bots, model endpoint, limits and logs."""

    class RetentionAction(models.TextChoices):
        REDACT = "redact", _("Redact: clear the text, keep the figures")
        DELETE = "delete", _("Delete the messages")

    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)

    model_endpoint = models.CharField(
        _("model endpoint"),
        max_length=300,
        blank=True,
        validators=[validate_endpoint],
        help_text=_(
            "Ollama base URL (or an OpenAI-compatible URL ending in /v1). "
            "Empty: the server's OLLAMA_URL."
        ),
    )
    model = models.CharField(_("model"), max_length=200, default="qwen2:1.5b")
    system_prompt = models.TextField(_("system prompt"), blank=True)
    language = models.CharField(
        _("reply language"),
        max_length=10,
        choices=settings.LANGUAGES,
        default="zh-hans",
        help_text=_("Language of the bot's own messages (help, apologies, limits)."),
    )
    # The ranges are what a careful operator could mean; beyond them is a typo (or a
    # value the model server would choke on, as num_ctx = 2**31 - 1 would).
    rate_limit_per_minute = models.PositiveIntegerField(
        _("messages per minute (tenant)"),
        default=120,
        validators=[MaxValueValidator(10_000)],
        help_text=_("0 to 10,000; 0 means no limit."),
    )
    user_rate_limit_per_minute = models.PositiveIntegerField(
        _("messages per minute (per user)"),
        default=10,
        validators=[MaxValueValidator(1_000)],
        help_text=_("0 to 1,000; 0 means no limit."),
    )
    # Quotas (conversations/quotas.py): days and months in `time_zone`; 0 means none.
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default="Asia/Shanghai",
        validators=[validate_time_zone],
        help_text=_(
            "An IANA name such as Asia/Shanghai: quota days and months, and the usage "
            "figures' days, start at midnight here."
        ),
    )
    quota_messages_per_day = models.PositiveIntegerField(
        _("messages per day (tenant)"),
        default=0,
        validators=[MaxValueValidator(MAX_MESSAGES_PER_DAY)],
        help_text=_("Questions sent to the model a day, by the whole tenant; 0: no quota."),
    )
    quota_tokens_per_month = models.PositiveBigIntegerField(
        _("tokens per month (tenant)"),
        default=0,
        validators=[MaxValueValidator(MAX_TOKENS_PER_MONTH)],
        help_text=_("Prompt and answer tokens a month, of the whole tenant; 0: no quota."),
    )
    user_quota_messages_per_day = models.PositiveIntegerField(
        _("messages per day (per user)"),
        default=0,
        validators=[MaxValueValidator(MAX_MESSAGES_PER_DAY)],
        help_text=_("Questions sent to the model a day, by each person; 0: no quota."),
    )
    user_quota_tokens_per_month = models.PositiveBigIntegerField(
        _("tokens per month (per user)"),
        default=0,
        validators=[MaxValueValidator(MAX_TOKENS_PER_MONTH)],
        help_text=_("Prompt and answer tokens a month, of each person; 0: no quota."),
    )
    session_timeout_seconds = models.PositiveIntegerField(
        _("session timeout (seconds)"),
        default=1800,
        validators=[MinValueValidator(60), MaxValueValidator(7 * 24 * 3600)],
        help_text=_(
            "After this much silence the next message starts a new conversation "
            "(60 seconds to 7 days)."
        ),
    )
    context_max_rounds = models.PositiveSmallIntegerField(
        _("context rounds"),
        default=5,
        validators=[MaxValueValidator(100)],
        help_text=_("How many earlier question/answer pairs the model sees (0 to 100)."),
    )
    num_ctx = models.PositiveIntegerField(
        _("context window (tokens)"),
        default=4096,
        validators=[MinValueValidator(256), MaxValueValidator(262_144)],
        help_text=_(
            "Ollama's num_ctx (256 to 262,144, and more than the longest answer, "
            "OLLAMA_NUM_PREDICT); the history is trimmed to fit it."
        ),
    )
    temperature = models.FloatField(
        _("temperature"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text=_("0 to 2; empty: the model's default."),
    )
    keep_alive = models.CharField(
        _("keep alive"),
        max_length=20,
        blank=True,
        default="5m",
        validators=[validate_keep_alive],
        help_text=_(
            'How long Ollama keeps the model loaded after an answer: seconds ("300"; "-1" '
            'keeps it loaded, "0" unloads it) or a duration ("5m", "1h30m"), at most 7 days. '
            "Empty: the server's OLLAMA_KEEP_ALIVE."
        ),
    )
    # Retention (conversations/retention.py): a nightly purge of older message content.
    retention_days = models.PositiveIntegerField(
        _("keep messages (days)"),
        default=0,
        validators=[validate_retention_days],
        help_text=_(
            "Message text older than this is deleted or redacted every night. "
            "0 keeps it forever; otherwise 2 to 36,500 days."
        ),
    )
    retention_action = models.CharField(
        _("then"),
        max_length=8,
        choices=RetentionAction.choices,
        default=RetentionAction.REDACT,
        help_text=_(
            "Redact keeps each message's status, tokens and timings for usage figures; "
            "delete removes the messages, and conversations left empty."
        ),
    )
    legal_hold = models.BooleanField(
        _("legal hold"),
        default=False,
        help_text=_(
            "Set by the platform operator: while on, nothing of this tenant is deleted "
            "or redacted, whatever its retention."
        ),
    )

    max_concurrency = models.PositiveSmallIntegerField(
        _("answers at once"),
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text=_(
            "How many answers the model endpoint works on at once, across all workers "
            "(1 to 64; match Ollama's OLLAMA_NUM_PARALLEL). More questions wait their turn "
            "in order. An endpoint shared by tenants takes the smallest of their values."
        ),
    )
    fallback_model_endpoint = models.CharField(
        _("fallback model endpoint"),
        max_length=300,
        blank=True,
        validators=[validate_endpoint],
        help_text=_(
            "Asked when the model fails for good (unreachable, model not found, errors "
            "that persist after the retries). Empty: the model endpoint above."
        ),
    )
    fallback_model = models.CharField(
        _("fallback model"),
        max_length=200,
        blank=True,
        help_text=_("Empty: the model above. Leave both fallback fields empty for no fallback."),
    )

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")

    def __str__(self) -> str:
        return self.name

    @property
    def endpoint(self) -> str:
        return (self.model_endpoint or settings.OLLAMA_URL).rstrip("/")

    @property
    def has_fallback(self) -> bool:
        return bool(self.fallback_model_endpoint or self.fallback_model)

    @property
    def fallback_endpoint(self) -> str:
        return (self.fallback_model_endpoint or self.endpoint).rstrip("/")

    def clean(self) -> None:
        # The history's budget is num_ctx minus the answer's; none left means no history.
        if self.num_ctx is not None and self.num_ctx <= settings.OLLAMA_NUM_PREDICT:
            message = _("Must be more than the longest answer, OLLAMA_NUM_PREDICT (%(n)d).")
            raise ValidationError({"num_ctx": message % {"n": settings.OLLAMA_NUM_PREDICT}})
        same_model = (self.fallback_model or self.model) == self.model
        if self.has_fallback and same_model and self.fallback_endpoint == self.endpoint:
            raise ValidationError(
                {"fallback_model": _("The fallback must differ from the model or its endpoint.")}
            )

    def check_model_settings(self) -> None:
        """Raise ValidationError if what the worker sends the model (endpoint, options)
        fails today's validators: a row saved before they existed, or by code that
        skipped them, must not be sent as is."""
        sent = {
            *("model_endpoint", "fallback_model_endpoint"),
            *("num_ctx", "temperature", "keep_alive"),
        }
        self.clean_fields(exclude=[f.name for f in self._meta.fields if f.name not in sent])


class Membership(models.Model):
    """A staff account's role in one tenant."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("Tenant admin")
        AUDITOR = "auditor", _("Auditor (read-only)")

    # No index of its own: unique_membership's leads with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
        db_index=False,
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("tenant")
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.AUDITOR)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="unique_membership"),
        ]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.get_role_display()})"


def default_scopes() -> list[str]:
    return ["chat"]


def validate_scopes(value: object) -> None:
    """A list of known scopes, each at most once."""
    if (
        not isinstance(value, list)
        or not all(isinstance(scope, str) and scope in ApiKey.SCOPES for scope in value)
        or len(set(value)) != len(value)
    ):
        raise ValidationError(
            _("Choose scopes among: %(scopes)s.") % {"scopes": ", ".join(ApiKey.SCOPES)}
        )


class ApiKey(models.Model):
    """A tenant's REST API key. Only a SHA-256 hash is stored; the key is shown once.

    `scopes` say what it may do (spec/api.md): "chat" (send messages, read their
    answers), "logs:read" (read and export the log and usage), "admin" (the tenant's
    settings and bots)."""

    SCOPES = ("chat", "logs:read", "admin")
    PREFIX_LENGTH = 8
    MIN_LENGTH = 32

    # No index of its own: unique_api_key_name's leads with it.
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("tenant"),
        db_index=False,
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=PREFIX_LENGTH, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    scopes = models.JSONField(
        _("scopes"),
        default=default_scopes,
        validators=[validate_scopes],
        help_text=_('What the key may do: ["chat", "logs:read", "admin"].'),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_api_key_name"),
        ]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return "ima_" + secrets.token_urlsafe(32)

    @staticmethod
    def hash(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def lookup_prefix(cls, raw_key: str) -> str:
        # Keys we generate start with "ima_"; skip it so the prefix carries entropy.
        return raw_key.removeprefix("ima_")[: cls.PREFIX_LENGTH]

    def set_key(self, raw_key: str) -> None:
        if len(raw_key) < self.MIN_LENGTH:
            raise ValueError(f"an API key must be at least {self.MIN_LENGTH} characters")
        self.prefix = self.lookup_prefix(raw_key)
        self.hashed_key = self.hash(raw_key)

    def matches(self, raw_key: str) -> bool:
        return hmac.compare_digest(self.hashed_key, self.hash(raw_key))

    @classmethod
    def for_key(cls, raw_key: str) -> ApiKey | None:
        """The active key with this value, its tenant loaded; None if there is none."""
        candidate = (
            cls.objects.select_related("tenant")
            .filter(prefix=cls.lookup_prefix(raw_key), is_active=True, tenant__is_active=True)
            .first()
        )
        if candidate is None or not candidate.matches(raw_key):
            return None
        now = timezone.now()
        # To the minute: a busy key's every request need not write its row.
        if candidate.last_used_at is None or now - candidate.last_used_at > timedelta(minutes=1):
            cls.objects.filter(pk=candidate.pk).update(last_used_at=now)
        return candidate


# The audit trail's model lives in its own module; importing it here registers it.
from .audit_models import AuditEvent  # noqa: E402, F401
