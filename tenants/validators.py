"""What a tenant's model settings may hold: the values Ollama accepts, at places we call.

Model fields use these validators, so the admin and `apply_config` refuse the same values,
and the worker checks a stored row against them before it calls the model.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# A keep_alive longer than this is a typo: a negative value already means "forever".
KEEP_ALIVE_MAX_SECONDS = 7 * 24 * 3600
# Go's time.ParseDuration units, which Ollama parses keep_alive strings with.
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_UNIT = "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))  # "ms" before "m"
_DURATION = re.compile(rf"(?:{_NUMBER}(?:{_UNIT}))+")
_PART = re.compile(rf"({_NUMBER})({_UNIT})")
# Characters that urlsplit and the HTTP client may read differently: refused outright.
_AMBIGUOUS = re.compile(r"[\s\\\x00-\x1f\x7f]")


def allowed_model_hosts() -> list[str]:
    """The hosts a tenant's endpoint may name: OLLAMA_URL's and the operator's list.

    Read at each check, so tests and a changed OLLAMA_URL need nothing else. "*" in
    MODEL_ENDPOINT_ALLOWED_HOSTS allows any host.
    """
    default = urlsplit(settings.OLLAMA_URL).hostname or ""
    return [default, *(host.lower() for host in settings.MODEL_ENDPOINT_ALLOWED_HOSTS)]


def validate_endpoint(value: str) -> None:
    """A base URL to call the model at: http(s), a host, optionally a port and a path.

    Unlike URLField this allows single-label hosts such as `ollama`, the model service in
    docker compose. Credentials, a query or a fragment are refused: the client appends
    `/api/chat`, so they could only smuggle something to a server we did not mean to call.
    Raises ValidationError, also when the host is not in `allowed_model_hosts()`.
    """
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number, or above 65535
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValidationError(_("Enter an http:// or https:// URL, e.g. http://ollama:11434"))
    if "@" in parts.netloc or "?" in value or "#" in value or _AMBIGUOUS.search(value):
        raise ValidationError(
            _("Enter a base URL only, without user name, password, query (?) or fragment (#).")
        )
    allowed = allowed_model_hosts()
    if "*" not in allowed and parts.hostname not in allowed:
        hosts = ", ".join(host for host in allowed if host)
        raise ValidationError(
            _("This server only calls models on: %(hosts)s") % {"hosts": hosts},
        )


def keep_alive_seconds(value: str) -> float | None:
    """`value` as Ollama reads a keep_alive string, in seconds; None if Ollama refuses it.

    A whole number is seconds (we send it as a JSON number); anything else must be a Go
    duration with units ("5m", "1h30m", "-1m"). Negative means "keep loaded".
    """
    sign = -1 if value.startswith("-") else 1
    body = value[1:] if value[:1] in "+-" else value
    if re.fullmatch("[0-9]+", body):
        return sign * int(body)
    if not _DURATION.fullmatch(body):
        return None
    return sign * sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(body))


def validate_keep_alive(value: str) -> None:
    """Raise ValidationError unless Ollama accepts `value` and it is at most 7 days either way."""
    seconds = keep_alive_seconds(value)
    if seconds is None:
        raise ValidationError(
            _(
                "Enter seconds (300; -1 keeps the model loaded, 0 unloads it after each "
                "answer) or a duration with a unit (5m, 1h30m)."
            )
        )
    if abs(seconds) > KEEP_ALIVE_MAX_SECONDS:
        raise ValidationError(_("At most 7 days (168h); -1 keeps the model loaded."))


def ollama_keep_alive(value: str) -> int | str | None:
    """keep_alive in the type Ollama expects: a number of seconds as a JSON number (the
    string "-1" gets 400 "missing unit in duration"), a duration as is, "" as None (not
    sent: the server's OLLAMA_KEEP_ALIVE)."""
    if not value:
        return None
    return int(value) if re.fullmatch("[-+]?[0-9]+", value) else value


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names this machine knows (read once: a walk of the tz database)."""
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    """Raise ValidationError unless `value` is an IANA time zone name, e.g. Asia/Shanghai."""
    if value not in time_zones():
        raise ValidationError(
            _('Unknown time zone "%(value)s": use an IANA name such as Asia/Shanghai or UTC.')
            % {"value": value}
        )
