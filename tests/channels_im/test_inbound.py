"""What every platform's inbound message is checked for before anything is stored."""

import pytest

from channels_im.platforms.base import BadPayload, InboundMessage


def message(**fields):
    values = {"external_id": "m1", "sender": "zhangsan", "chat": "c1", "text": "hi"}
    return InboundMessage(**{**values, **fields})


@pytest.mark.parametrize("field", ["external_id", "sender", "chat"])
@pytest.mark.parametrize("value", ["x" * 201, "a\x00b", "a\udc00b", "a\nb"])
def test_it_refuses_an_identifier_no_column_can_hold(field, value):
    with pytest.raises(BadPayload, match=field):
        message(**{field: value})


def test_it_takes_identifiers_up_to_their_column_width():
    long = "x" * 200
    assert message(external_id=long, sender=long, chat=long).chat == long


def test_it_cleans_text_and_context_of_what_no_column_stores():
    cleaned = message(
        text="问\x00题\udc00。",
        reply_context={"url": "https://x/\x00", "nested": ["\ud800", {"k\x00": "v"}]},
    )
    assert cleaned.text == "问题\ufffd。"
    assert cleaned.reply_context == {"url": "https://x/", "nested": ["\ufffd", {"k": "v"}]}
