"""A bot self-test's model checks: the tenant's model endpoint answers and has the model,
and the model reads as much context as the tenant's num_ctx sends (spec/ollama.md §4, §7).

Plain values in, findings out: it reads no rows, so the self-test may run it in a
thread of its own while the platform is asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from common.selftest import PASSED, Finding, failed, passed, skipped

from . import llm

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

MODEL, MODEL_LABEL = "model", _("Model endpoint answers and has the model")
CONTEXT, CONTEXT_LABEL = "context_length", _("Model's context length covers num_ctx")
# A finding names this many of the endpoint's models at most.
SHOWN_MODELS = 10

ENDPOINT_ACTION = _(
    "Check the tenant's model endpoint: an Ollama base URL (http://host:11434), or an "
    "OpenAI-compatible one ending in /v1."
)


def model_checks(endpoint: str, model: str, num_ctx: int, timeout: float) -> list[Finding]:
    """model and context_length, each request bounded by `timeout` seconds. `endpoint` is
    an Ollama base URL, or an OpenAI-compatible one ending in /v1."""
    openai = endpoint.rstrip("/").endswith("/v1")
    found = _model(endpoint, model, timeout, openai=openai)
    if openai:
        why = _(
            "An OpenAI-compatible endpoint is not sent num_ctx and does not tell the "
            "model's context length: the server's own setting applies."
        )
        return [found, skipped(CONTEXT, CONTEXT_LABEL, why)]
    if found.status != PASSED:
        return [found, skipped(CONTEXT, CONTEXT_LABEL, _("Runs once the endpoint has the model."))]
    return [found, _context(endpoint, model, num_ctx, timeout)]


def _model(endpoint: str, model: str, timeout: float, *, openai: bool) -> Finding:
    """The endpoint's model list (`/api/tags`, or `/models` under /v1) names `model`."""
    path = "/models" if openai else "/api/tags"
    try:
        names = _names(llm.metadata(endpoint, path, timeout), openai=openai)
    except llm.LLMError as exc:
        return _unanswered(MODEL, MODEL_LABEL, endpoint, exc)
    if names is None:
        detail = format_lazy(_("The answer to {path} is not a list of models."), path=path)
        return failed(MODEL, MODEL_LABEL, detail, ENDPOINT_ACTION)
    if _tagged(model) in {_tagged(name) for name in names}:
        return passed(MODEL, MODEL_LABEL, format_lazy(_("It has {model}."), model=model))
    listed = ", ".join(names[:SHOWN_MODELS]) + (" …" if len(names) > SHOWN_MODELS else "")
    detail = format_lazy(
        _("The endpoint has no model {model}. It has: {names}."), model=model, names=listed or "-"
    )
    action = format_lazy(
        _(
            "Pull it on the model server (ollama pull {model}), or choose a model it has "
            "in the tenant's settings."
        ),
        model=model,
    )
    return failed(MODEL, MODEL_LABEL, detail, action)


def _names(answer: Any, *, openai: bool) -> list[str] | None:
    """The model names of a model list, or None if `answer` is none."""
    if not isinstance(answer, dict):
        return None
    field, name = ("data", "id") if openai else ("models", "name")
    entries = answer.get(field)
    if entries is None and openai:
        return []  # Ollama's /v1/models says `null` when no model is installed
    if not isinstance(entries, list):
        return None
    return [e[name] for e in entries if isinstance(e, dict) and isinstance(e.get(name), str)]


def _tagged(name: str) -> str:
    """The name with Ollama's implied tag: "llama3" is "llama3:latest"."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _context(endpoint: str, model: str, num_ctx: int, timeout: float) -> Finding:
    """The model's trained context length (`/api/show`, model_info) against num_ctx:
    Ollama cuts a larger num_ctx down to it, so the history the bot budgets for num_ctx
    would not fit."""
    try:
        shown = llm.metadata(endpoint, "/api/show", timeout, {"model": model})
    except llm.LLMError as exc:
        return _unanswered(CONTEXT, CONTEXT_LABEL, endpoint, exc)
    length = context_length(shown)
    if length is None:
        why = _("The endpoint does not tell the model's context length.")
        return skipped(CONTEXT, CONTEXT_LABEL, why)
    numbers = {"model": model, "length": length, "num_ctx": num_ctx}
    if num_ctx > length:
        detail = format_lazy(
            _(
                "The tenant's context window (num_ctx) is {num_ctx} tokens, but {model} "
                "reads at most {length}: longer prompts are cut, and the bot loses "
                "earlier parts of the conversation."
            ),
            **numbers,
        )
        action = format_lazy(_("Set the tenant's context window to {length} or less."), **numbers)
        return failed(CONTEXT, CONTEXT_LABEL, detail, action)
    detail = format_lazy(_("{model} reads up to {length} tokens; num_ctx is {num_ctx}."), **numbers)
    return passed(CONTEXT, CONTEXT_LABEL, detail)


def context_length(shown: Any) -> int | None:
    """`<architecture>.context_length` of an `/api/show` answer's model_info, or None."""
    info = shown.get("model_info") if isinstance(shown, dict) else None
    if not isinstance(info, dict):
        return None
    preferred = f"{info.get('general.architecture')}.context_length"
    keys = [preferred, *(key for key in info if key.endswith(".context_length"))]
    value = next((info[key] for key in keys if key in info), None)
    positive = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if positive else None


def _unanswered(key: str, label: StrOrPromise, endpoint: str, exc: llm.LLMError) -> Finding:
    if exc.permanent:
        detail = format_lazy(_("{endpoint} refused: {error}"), endpoint=endpoint, error=str(exc))
        return failed(key, label, detail, ENDPOINT_ACTION)
    detail = format_lazy(_("No answer from {endpoint}: {error}"), endpoint=endpoint, error=str(exc))
    action = _("Start the model server, or correct the tenant's model endpoint, then test again.")
    return failed(key, label, detail, action)
