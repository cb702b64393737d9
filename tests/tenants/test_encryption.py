import base64
import io
import os

import pytest
from django.core.management import call_command
from django.db import connection

from tenants import encryption
from tests.factories import BotFactory


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def stored_credentials(bot) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM channels_im_bot WHERE id = %s", [bot.pk])
        return cursor.fetchone()[0]


def test_it_round_trips_and_never_repeats_a_ciphertext():
    first, second = encryption.encrypt("s3cret"), encryption.encrypt("s3cret")
    assert first != second
    assert encryption.decrypt(first) == encryption.decrypt(second) == "s3cret"
    assert "s3cret" not in first


def test_it_detects_tampering():
    stored = encryption.encrypt("s3cret")
    prefix, kid, blob = stored.split(":")
    raw = bytearray(base64.b64decode(blob))
    raw[14] ^= 1
    with pytest.raises(encryption.SecretDecryptionError):
        encryption.decrypt(f"{prefix}:{kid}:{base64.b64encode(bytes(raw)).decode()}")


def test_it_refuses_a_value_from_an_unknown_key(settings):
    stored = encryption.encrypt("s3cret")
    settings.FIELD_ENCRYPTION_KEY = new_key()
    with pytest.raises(encryption.SecretDecryptionError):
        encryption.decrypt(stored)


def test_it_masks_secrets():
    assert encryption.mask("abcdefghijklmnop") == "••••••mnop"
    assert "abc" not in encryption.mask("abcdef")
    assert encryption.mask("") == ""


@pytest.mark.django_db
def test_it_rotates_keys_old_rows_stay_readable_and_get_rewritten(settings, tenant_a):
    bot = BotFactory(tenant=tenant_a)
    old_key = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = f"{new_key()},{old_key}"

    bot.refresh_from_db()
    assert bot.credentials["secret"] == "wecom-app-secret-value"
    assert not encryption.is_current(stored_credentials(bot))

    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert "channels_im.Bot: re-encrypted 1 row(s)" in out.getvalue()
    assert encryption.is_current(stored_credentials(bot))
    settings.FIELD_ENCRYPTION_KEY = settings.FIELD_ENCRYPTION_KEY.split(",")[0]
    bot.refresh_from_db()
    assert bot.credentials["secret"] == "wecom-app-secret-value"


def test_the_system_check_names_a_malformed_key(settings):
    from tenants.checks import encryption_key_check

    settings.FIELD_ENCRYPTION_KEY = "too-short"
    [error] = encryption_key_check(None)
    assert error.id == "tenants.E001"
