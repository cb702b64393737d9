"""Every metric the product exports at /metrics, in one catalogue.

Each is counted at the one place its event happens (named in its help text's module), and
all of them are cheap: a value in a memory-mapped file, no database or network work. Label
values stay few: platforms, outcomes, statuses, tenants' slugs and model endpoints' host
and port; never a user, chat, message or bot id. Where the values come from the processes
is `store.py`'s, which must be set up before the first metric below is created.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from prometheus_client import Counter, Histogram

from . import store

store.start()

# Each platform's deadline for the acknowledgement is a bucket boundary, so a panel can
# show the share answered in time: URL verification 1 s, DingTalk events 1.5 s, Feishu 3 s,
# WeCom 5 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 3, 5, 10)

CALLBACKS = Counter(
    "im_callbacks",
    "Platform callbacks by platform and outcome (channels_im/views.py).",
    ["platform", "outcome"],
)
CALLBACK_SECONDS = Histogram(
    "im_callback_ack_seconds",
    "Seconds from a callback's arrival in the view to its acknowledgement.",
    ["platform"],
    buckets=ACK_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "im_queue_wait_seconds",
    "Seconds from a row's creation to its first claim by a worker (conversations/claims.py).",
    ["queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
FIRST_TOKEN_SECONDS = Histogram(
    "im_model_first_token_seconds",
    "Seconds from sending a chat to the model to its first token (conversations/llm.py).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120),
)
MODEL_SECONDS = Histogram(
    "im_model_seconds",
    "Seconds the model took for a whole answer (conversations/llm.py).",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
DELIVERY_SECONDS = Histogram(
    "im_delivery_seconds",
    "Seconds a successful send through a platform's API took (conversations/delivery.py).",
    ["platform"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
MESSAGES = Counter(
    "im_messages",
    "Message rows by the final status written on them, counted once each: questions "
    "(role user) and the bot's answers (role assistant) (conversations/claims.py, "
    "conversations/services.py).",
    ["role", "status"],
)
TOKENS = Counter(
    "im_tokens",
    "Model tokens by tenant slug and kind, prompt or completion (conversations/claims.py).",
    ["tenant", "kind"],
)
REFUSED = Counter(
    "im_refused_messages",
    "Messages refused before the model, by tenant slug and reason: rate_limit_user, "
    "rate_limit_tenant (conversations/services.py); quota_messages_user, quota_messages_bot, "
    "quota_messages_tenant, quota_tokens_user, quota_tokens_bot, quota_tokens_tenant "
    "(conversations/pipeline.py).",
    ["tenant", "reason"],
)
DELIVERY_FAILURES = Counter(
    "im_delivery_failures",
    "Failed sends by platform and permanence, transient (retried) or permanent "
    "(conversations/claims.py).",
    ["platform", "permanence"],
)
MODEL_ERRORS = Counter(
    "im_model_errors",
    "Failed model calls by endpoint (host:port) and permanence (conversations/llm.py).",
    ["endpoint", "permanence"],
)
ADMISSION_WAIT_SECONDS = Histogram(
    "im_admission_wait_seconds",
    "Seconds from a question's arrival to its slot on the model endpoint, by endpoint "
    "(host:port) (conversations/admission.py).",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
FALLBACKS = Counter(
    "im_model_fallbacks",
    "Questions handed to their tenant's fallback model after the model failed for good, by "
    "the failed endpoint (host:port) (conversations/pipeline.py).",
    ["endpoint"],
)
STOPS = Counter(
    "im_stops",
    "Requests to stop an answer, by how (command: /stop; recall: a recalled question) and "
    "what they found: queued (stopped before the model was asked), answering (its worker "
    "told to close the model request) or nothing (conversations/stops.py).",
    ["how", "found"],
)
STUCK_ROWS = Counter(
    "im_stuck_rows",
    "Rows the sweep found stuck and enqueued again, by role (conversations/tasks.py).",
    ["role"],
)

# Model endpoints are set by tenant admins: past this many in one process, "other".
MAX_ENDPOINTS = 50
_endpoints: set[str] = set()
_endpoints_lock = threading.Lock()


def endpoint_label(url: str) -> str:
    """The label of a model endpoint URL: its host and port (the scheme's default port if
    none is given), or "other" once MAX_ENDPOINTS others have been seen."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return "other"
    label = f"{parts.hostname or ''}:{port}"
    with _endpoints_lock:
        if label not in _endpoints and len(_endpoints) >= MAX_ENDPOINTS:
            return "other"
        _endpoints.add(label)
    return label


def permanence(permanent: bool) -> str:
    """The `permanence` label of an error."""
    return "permanent" if permanent else "transient"
