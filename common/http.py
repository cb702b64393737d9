"""Outbound HTTP, for the model endpoint and the platforms' APIs alike: one keep-alive
session per thread, so the same few hosts are called without a new TCP handshake."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests

from .hangup import HangupAdapter

_local = threading.local()


def session() -> requests.Session:
    """This thread's session."""
    if not hasattr(_local, "session"):
        _local.session = _EnvironmentReadOnce()
    return _local.session


class _EnvironmentReadOnce(requests.Session):
    """requests looks up proxies (HTTPS_PROXY, NO_PROXY …) and the CA bundle in the
    environment for every request, decoding all of os.environ several times: about 0.2 ms
    a request. A running process's environment does not change, so this looks once per
    origin; the outcome is the same. Its connections can be closed from another thread
    (`common.hangup`)."""

    def __init__(self) -> None:
        super().__init__()
        self.mount("http://", HangupAdapter())
        self.mount("https://", HangupAdapter())

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(str(url))
        found = _environment_settings(f"{parts.scheme}://{parts.netloc}", stream, verify, cert)
        return {**found, "proxies": dict(found["proxies"])}  # the caller may change its copy


@lru_cache(maxsize=256)
def _environment_settings(origin: str, stream: Any, verify: Any, cert: Any) -> Any:
    return requests.Session().merge_environment_settings(origin, {}, stream, verify, cert)
