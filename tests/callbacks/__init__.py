"""Build callbacks exactly as the platforms sign and encrypt them."""

from __future__ import annotations

import json
import re
from typing import Any


def as_json(value: Any) -> str:
    """JSON as the platforms send it: UTF-8 text as is, except that a lone surrogate (which
    UTF-8 cannot carry) is written as the `\\udc00` escape a hostile sender would use."""
    text = json.dumps(value, ensure_ascii=False)
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
