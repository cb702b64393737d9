import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from channels_im.models import Bot
from conversations.models import Conversation, Message
from tenants.models import ApiKey, Membership, Tenant

WECOM_CREDENTIALS = {
    "corp_id": "ww1234567890abcdef",
    "agent_id": "1000002",
    "secret": "wecom-app-secret-value",
    "token": "SpecToken2024",
    "encoding_aes_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
}


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())
    model = "qwen2:1.5b"
    system_prompt = "You are a helpful assistant."
    language = "en"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    # Staff status is left unticked: a membership (or superuser) is what opens the admin.
    password = factory.django.Password("pw")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.ADMIN


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot

    tenant = factory.SubFactory(TenantFactory)
    platform = "wecom"
    name = factory.Sequence(lambda n: f"bot-{n}")
    credentials = factory.LazyFunction(lambda: dict(WECOM_CREDENTIALS))


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Pass `key="…"` to know the raw value; only its hash and prefix are stored."""

    class Meta:
        model = ApiKey

    class Params:
        key = factory.LazyFunction(ApiKey.generate)

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    prefix = factory.LazyAttribute(lambda o: ApiKey.lookup_prefix(o.key))
    hashed_key = factory.LazyAttribute(lambda o: ApiKey.hash(o.key))


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    bot = factory.SubFactory(BotFactory)
    tenant = factory.LazyAttribute(lambda o: o.bot.tenant)
    chat_id = factory.Sequence(lambda n: f"chat-{n}")
    user_id = "zhangsan"
    last_activity_at = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    bot = factory.LazyAttribute(lambda o: o.conversation.bot)
    tenant = factory.LazyAttribute(lambda o: o.conversation.tenant)
    role = Message.Role.USER
    content = factory.Sequence(lambda n: f"question {n}")
    sender = "zhangsan"
    external_id = factory.Sequence(lambda n: f"msg-{n}")
    status = Message.Status.ANSWERED


def counted_question(bot, sender, tokens=0, estimated=False):
    """A question admitted against its quotas now, and its answer's tokens spent."""
    from conversations import quotas

    question = MessageFactory(
        conversation=ConversationFactory(bot=bot, user_id=sender),
        sender=sender,
        prompt_tokens=tokens,
        completion_tokens=0,
        tokens_estimated=estimated,
    )
    assert quotas.admit(question) is None
    quotas.spend(question)
    return question
