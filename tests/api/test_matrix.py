"""Every API endpoint × every kind of caller, generated from the URL conf: a new endpoint
is covered the moment it is routed (spec/api.md; STYLE principle 8).

Callers: no key; a key of the tenant with each scope alone; a key of another tenant with
every scope. Expected: 401 without a key; 403 without the endpoint's scope; 404 for
another tenant's object (never 403: existence is not revealed), and lists that show the
other tenant none of this tenant's rows.
"""

import re

import pytest
from rest_framework.test import APIClient

from assistant.api_urls import urlpatterns
from conversations.models import Message
from tenants.models import ApiKey
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

PUBLIC = {"schema/", "docs/"}  # the schema and its docs page are open to read


def routes() -> list[tuple[str, str, tuple[str, ...]]]:
    """(path pattern, method, scopes that grant it) for every routed endpoint."""
    found = []
    for pattern in urlpatterns:
        if pattern.name == "api-not-found":  # every other path: a 404 for everyone
            continue
        route = str(pattern.pattern)
        view = pattern.callback
        cls = view.cls
        actions = getattr(view, "actions", None)
        offered = sorted(actions) if actions else ["get", "post", "patch", "delete"]
        handled = [m for m in offered if actions or hasattr(cls, m)]
        methods = [m for m in handled if m in cls.http_method_names]
        for method in methods:
            scopes = getattr(cls, "required_scopes", ())
            if isinstance(scopes, dict):
                scopes = scopes.get(method.upper(), ())
            found.append((route, method, tuple(scopes)))
    return found


ROUTES = routes()


@pytest.fixture
def objects(tenant_a, fake_platforms, fake_ollama):
    """One of each thing an API path can name, all tenant A's. A path that calls out (a
    bot's self-test) calls the fakes."""
    bot = BotFactory(tenant=tenant_a)
    # Sent through the API, so that a `chat` key may read it too.
    api_bot = BotFactory(tenant=tenant_a, platform="api", name="REST API", credentials={})
    conversation = ConversationFactory(tenant=tenant_a, bot=api_bot)
    question = MessageFactory(tenant=tenant_a, bot=api_bot, conversation=conversation)
    MessageFactory(
        tenant=tenant_a,
        bot=api_bot,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        external_id=None,
    )
    return {"pk": question.pk, "public_id": bot.public_id, "conversation": conversation.pk}


def url(route: str, objects: dict) -> str:
    """The route with tenant A's ids in its parameters."""

    def fill(match: re.Match) -> str:
        name = match.group(1).split(":")[-1]
        if name == "pk" and route.startswith("conversations"):
            return str(objects["conversation"])
        return str(objects[name])

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(objects[m.group(1)]), route)
    path = re.sub(r"<([^>]+)>", fill, path)
    return "/api/v1/" + path.strip("^$")


def call(client: APIClient, method: str, path: str):
    body = {"user": "u", "text": "hi"} if path.endswith("/messages/") else {}
    return getattr(client, method)(path, body, format="json")


def client_with(key: str | None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.parametrize(("route", "method", "scopes"), ROUTES)
def test_without_a_key_it_is_401(route, method, scopes, objects):
    response = call(client_with(None), method, url(route, objects))
    if route in PUBLIC:
        assert response.status_code == 200
        return
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("route", "method", "scopes"), ROUTES)
@pytest.mark.parametrize("scope", ApiKey.SCOPES)
def test_a_key_without_the_endpoints_scope_is_refused(
    route, method, scopes, scope, objects, tenant_a, key_for
):
    if route in PUBLIC:
        pytest.skip("open to read")
    response = call(client_with(key_for(tenant_a, scope)), method, url(route, objects))
    if scope in scopes:
        assert response.status_code not in (401, 403, 404), response.content
    else:
        assert response.status_code == 403, response.content


@pytest.mark.parametrize(("route", "method", "scopes"), ROUTES)
def test_another_tenant_never_sees_this_tenants_objects(
    route, method, scopes, objects, tenant_b, key_for
):
    if route in PUBLIC:
        pytest.skip("open to read")
    response = call(client_with(key_for(tenant_b, *ApiKey.SCOPES)), method, url(route, objects))
    if "<" in route:  # a path naming an object
        assert response.status_code == 404, response.content
        return
    assert response.status_code < 500
    text = response.content.decode() if not response.streaming else ""
    for name in ("pk", "public_id", "conversation"):
        assert f'"{objects[name]}"' not in text
