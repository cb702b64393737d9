import pytest

from channels_im.platforms.base import InboundMessage
from conversations.models import Conversation, Message
from conversations.services import receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def say(wecom_bot, fake_platforms, eager_celery, django_capture_on_commit_callbacks):
    counter = iter(range(1000))

    def send(text, sender="zhangsan"):
        inbound = InboundMessage(
            external_id=f"c{next(counter)}", sender=sender, chat=sender, text=text
        )
        with django_capture_on_commit_callbacks(execute=True):
            return receive(wecom_bot, inbound)

    return send


def sent_texts(fake_platforms):
    return fake_platforms.wecom_texts()


@pytest.mark.parametrize("command", ["/reset", "重置", "/重置", "/RESET please"])
def test_it_resets_the_session(say, fake_ollama, fake_platforms, command):
    fake_ollama.reply = "first answer"
    say("remember the number 42")
    say(command)
    say("which number?")
    assert Conversation.objects.count() == 2
    contents = [m["content"] for m in fake_ollama.requests[-1]["messages"]]
    assert "remember the number 42" not in contents
    assert "forgotten" in sent_texts(fake_platforms)[1]


@pytest.mark.parametrize("command", ["/help", "帮助", "/帮助"])
def test_it_explains_usage_and_the_current_limits(say, wecom_bot, fake_platforms, command):
    tenant = wecom_bot.tenant
    tenant.context_max_rounds, tenant.user_rate_limit_per_minute = 7, 9
    tenant.session_timeout_seconds = 600
    tenant.save()
    say(command)
    [text] = sent_texts(fake_platforms)
    assert "/reset" in text and "7" in text and "9" in text and "10 minutes" in text


def test_commands_never_reach_the_model_nor_its_context(say, fake_ollama):
    say("/help")
    say("a real question")
    assert len(fake_ollama.requests) == 1
    contents = [m["content"] for m in fake_ollama.requests[0]["messages"]]
    assert "/help" not in contents
    assert Message.objects.get(content="/help").status == Message.Status.IGNORED


def test_commands_count_against_the_rate_limit(say, wecom_bot, fake_platforms):
    # Each command costs a platform send, and a platform's own send limits bite every
    # user of the bot: 30 /reset in a row are not 30 sends.
    wecom_bot.tenant.user_rate_limit_per_minute = 2
    wecom_bot.tenant.save()
    rows = [say("/reset") for _ in range(30)]
    assert [row.status for row in rows[:3]] == ["ignored", "ignored", "rate_limited"]
    assert {row.status for row in rows[2:]} == {Message.Status.RATE_LIMITED}
    texts = sent_texts(fake_platforms)
    assert len(texts) == 3  # two answers, then the limit notice once
    assert "faster than this assistant allows" in texts[2]


def test_a_group_shares_one_context_when_the_bot_says_so(
    wecom_bot, eager_celery, fake_ollama, fake_platforms, django_capture_on_commit_callbacks
):
    wecom_bot.shared_group_session = True
    wecom_bot.save()
    for n, sender in enumerate(["alice", "bob"]):
        inbound = InboundMessage(
            external_id=f"g{n}",
            sender=sender,
            chat="group-1",
            text=f"{sender} speaking",
            is_group=True,
        )
        with django_capture_on_commit_callbacks(execute=True):
            receive(wecom_bot, inbound)
    assert Conversation.objects.count() == 1
    contents = [m["content"] for m in fake_ollama.requests[-1]["messages"]]
    assert "alice speaking" in contents


def test_group_members_have_their_own_context_by_default(wecom_bot):
    for n, sender in enumerate(["alice", "bob"]):
        receive(
            wecom_bot,
            InboundMessage(
                external_id=f"g{n}", sender=sender, chat="group-1", text="hi", is_group=True
            ),
        )
    assert Conversation.objects.count() == 2


def test_it_answers_in_the_tenants_language(say, wecom_bot, fake_platforms):
    wecom_bot.tenant.language = "zh-hans"
    wecom_bot.tenant.save()
    say("/重置")
    say("帮助")
    reset_text, help_text = sent_texts(fake_platforms)
    assert "清空" in reset_text
    assert "/重置" in help_text and "轮" in help_text
