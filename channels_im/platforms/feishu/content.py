"""What a Feishu message says, as the text a model reads (spec §3.3).

`content` is a JSON string whose shape depends on `message_type`: `text` carries
`{"text": …}`, `post` (what Feishu sends for a message with line breaks, a list or bold
text) carries a title and paragraphs of tagged elements. @mentions are placeholders
(`@_user_1`) resolved through the event's `mentions`: the bot's own is removed, anyone
else's becomes `@<name>` so the model knows who is meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import base

READABLE_TYPES = ("text", "post")
# A placeholder with the blanks around it: the bot's goes with its blanks.
PLACEHOLDER = re.compile(r"([ \t]*)(@_user_\d+|@_all)([ \t]*)")


@dataclass(frozen=True)
class Mentions:
    """The message's mentions: placeholder key → (open_id, name), and which one is the bot."""

    people: dict[str, tuple[str, str]]
    bot_key: str | None

    @classmethod
    def of(cls, mentions: Any, bot_open_id: str) -> Mentions:
        """From the event's `mentions`. Without the bot's open_id (not learned yet) the
        first mention is taken for the bot's: people @ the bot before they ask."""
        people: dict[str, tuple[str, str]] = {}
        for mention in mentions if isinstance(mentions, list) else []:
            mention = _object(mention)
            key, name = mention.get("key"), mention.get("name")
            if isinstance(key, str):
                open_id = _object(mention.get("id")).get("open_id")
                people[key] = (open_id if isinstance(open_id, str) else "", str(name or ""))
        if bot_open_id:
            bot_key = next((k for k, (oid, _) in people.items() if oid == bot_open_id), None)
        else:
            bot_key = next(iter(people), None)
        return cls(people, bot_key)

    def replace(self, found: re.Match[str]) -> str:
        """PLACEHOLDER's replacement: the bot's mention and its blanks become one space."""
        lead, key, trail = found.groups()
        name = self.name(key)
        return f"{lead}{name}{trail}" if name else " "

    def name(self, key: str) -> str:
        """What replaces a placeholder: nothing for the bot, `@name` for anyone else."""
        if key == self.bot_key:
            return ""
        if key == "@_all":
            return "@all"
        return f"@{self.people[key][1]}" if key in self.people else ""


def question(message_type: str, content: Any, mentions: Mentions) -> str:
    """The text of a `text` or `post` message; BadPayload if its content is unreadable."""
    if not isinstance(content, str):
        raise base.BadPayload("message content is not a string")
    body = base.json_object(content)
    if message_type == "text":
        text = body.get("text")
        if not isinstance(text, str):
            raise base.BadPayload("text message without text")
        return PLACEHOLDER.sub(mentions.replace, text).strip()
    return _post_text(_localised(body), mentions)


def _localised(body: dict[str, Any]) -> dict[str, Any]:
    """A post's {title, content}: as is, or the first language of `{"zh_cn": {…}}`."""
    if "content" in body:
        return body
    return next((_object(v) for v in body.values() if isinstance(v, dict)), {})


def _post_text(post: dict[str, Any], mentions: Mentions) -> str:
    lines = [post["title"]] if isinstance(post.get("title"), str) and post["title"] else []
    paragraphs = post.get("content")
    for paragraph in paragraphs if isinstance(paragraphs, list) else []:
        elements = paragraph if isinstance(paragraph, list) else []
        lines.append("".join(_element_text(_object(e), mentions) for e in elements).strip())
    return "\n".join(lines).strip()


def _element_text(element: dict[str, Any], mentions: Mentions) -> str:
    """One rich-text element as text; pictures, media and emoji say nothing to a model."""
    tag = element.get("tag")
    text = element["text"] if isinstance(element.get("text"), str) else ""
    if tag == "at":
        key = element.get("user_id")
        return mentions.name(key) if isinstance(key, str) else ""
    if tag == "a":
        return text or str(element.get("href") or "")
    if tag == "code_block":
        return f"\n```{element.get('language') or ''}\n{text}\n```\n"
    if tag in ("text", "md"):
        return text
    return ""


def _object(value: Any) -> dict[str, Any]:
    """A nested JSON object, or {} when it is missing or of another type."""
    return value if isinstance(value, dict) else {}
