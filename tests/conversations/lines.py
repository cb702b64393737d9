"""Questions for the tests of a model endpoint's line (conversations/admission.py)."""

from conversations.claims import Claim
from conversations.models import Message
from tests.factories import BotFactory, MessageFactory


def question(tenant, **fields):
    """A queued question of `tenant`, on a bot of its own."""
    bot = BotFactory(tenant=tenant)
    return MessageFactory(conversation__bot=bot, status=Message.Status.QUEUED, **fields)


def claim(message):
    """This test's claim of `message`, which must be claimable."""
    taken = Claim.take(message.pk, Message.Role.USER)
    assert taken is not None
    return taken
