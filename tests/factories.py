import factory
from django.contrib.auth import get_user_model

from channels_im.models import Bot
from tenants.models import Membership, Tenant

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
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw")


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
