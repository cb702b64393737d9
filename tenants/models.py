from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def validate_endpoint(value: str) -> None:
    """An http(s) URL. Unlike URLField this allows single-label hosts such as `ollama`,
    the name of the model service in docker compose."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("Enter an http:// or https:// URL, e.g. http://ollama:11434"))
    allowed = settings.MODEL_ENDPOINT_ALLOWED_HOSTS
    if allowed and parts.hostname not in allowed:
        raise ValidationError(
            _("This server only calls models on: %(hosts)s") % {"hosts": ", ".join(allowed)}
        )


class Tenant(models.Model):
    """A company or department: its bots, model endpoint, limits and logs."""

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
    rate_limit_per_minute = models.PositiveIntegerField(
        _("messages per minute (tenant)"), default=120, help_text=_("0 means no limit.")
    )
    user_rate_limit_per_minute = models.PositiveIntegerField(
        _("messages per minute (per user)"), default=10, help_text=_("0 means no limit.")
    )
    session_timeout_seconds = models.PositiveIntegerField(
        _("session timeout (seconds)"),
        default=1800,
        validators=[MinValueValidator(60)],
        help_text=_("After this much silence the next message starts a new conversation."),
    )
    context_max_rounds = models.PositiveSmallIntegerField(
        _("context rounds"),
        default=5,
        validators=[MaxValueValidator(100)],
        help_text=_("How many earlier question/answer pairs the model sees."),
    )
    num_ctx = models.PositiveIntegerField(
        _("context window (tokens)"),
        default=4096,
        validators=[MinValueValidator(256)],
        help_text=_("Ollama's num_ctx; the history is trimmed to fit it."),
    )
    temperature = models.FloatField(
        _("temperature"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
    )
    keep_alive = models.CharField(
        _("keep alive"),
        max_length=20,
        blank=True,
        default="5m",
        help_text=_('How long Ollama keeps the model loaded, e.g. "5m", "1h", "-1".'),
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


class Membership(models.Model):
    """A staff account's role in one tenant."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("Tenant admin")
        AUDITOR = "auditor", _("Auditor (read-only)")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
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


class ApiKey(models.Model):
    """A tenant's REST API key. Only a SHA-256 hash is stored; the key is shown once."""

    PREFIX_LENGTH = 8
    MIN_LENGTH = 32

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("tenant")
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=PREFIX_LENGTH, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
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
        cls.objects.filter(pk=candidate.pk).update(last_used_at=timezone.now())
        return candidate
