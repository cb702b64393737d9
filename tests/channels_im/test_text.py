import pytest

from channels_im.platforms.text import split_first, split_utf8


def test_it_keeps_short_text_whole():
    assert split_utf8("hello", 2048) == ["hello"]
    assert split_utf8("", 2048) == [""]


def test_it_cuts_at_paragraphs_before_sentences():
    text = "First paragraph. " * 20 + "\n\n" + "Second paragraph. " * 20
    first, second = split_utf8(text, 500)
    assert first == ("First paragraph. " * 20).rstrip()
    assert second == "Second paragraph. " * 20


def test_it_cuts_chinese_at_a_full_stop_without_breaking_characters():
    sentence = "这是一个很长的句子，用来测试拆分。"
    parts = split_utf8(sentence * 40, 600)
    assert all(len(p.encode()) <= 600 for p in parts)
    assert all(p.endswith("。") for p in parts)
    assert "".join(parts) == sentence * 40


@pytest.mark.parametrize("limit", [120, 300, 2048])
def test_it_closes_and_reopens_a_code_block_cut_in_two(limit):
    code = "\n".join(f"    print({n})  # line {n}" for n in range(60))
    text = f"Here is the script:\n\n```python\n{code}\n```\n\nRun it twice."
    parts = split_utf8(text, limit)
    assert len(parts) > 1 or limit == 2048
    for part in parts:
        assert len(part.encode()) <= limit
        assert part.count("```") % 2 == 0, part  # every chunk renders on its own
    for part in parts[1:-1]:
        assert part.startswith("```python\n")
    # Nothing lost, indentation kept: the code lines all come through unchanged.
    joined = "\n".join(parts)
    assert all(f"    print({n})  # line {n}" in joined for n in range(60))


def test_split_first_returns_the_rest_to_send_separately():
    head, rest = split_first("a" * 100 + " " + "b" * 100, 150)
    assert head == "a" * 100
    assert rest == "b" * 100


@pytest.mark.parametrize(
    "text",
    [
        "Here is the data:\n\n```" + "a, " * 1000,  # the fence line alone exceeds a chunk
        "```python\n" + "x" * 5000,  # one unbreakable code line
        "```" + "```" * 900,  # fences only
    ],
)
def test_it_always_makes_progress_on_hostile_text(text):
    parts = split_utf8(text, 2048)
    assert len(parts) < 20
    assert all(len(p.encode()) <= 2048 for p in parts)
