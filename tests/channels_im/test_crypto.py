"""Callback crypto against the vectors produced by the platforms' own SDKs.

Every value comes from tests/fixtures/platform_vectors.json so that a mismatch means we
disagree with wechatpy / lark-oapi / DingTalk's samples, not with ourselves.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus

import pytest
from Crypto.Cipher import AES

from channels_im.platforms.base import BadPayload, SignatureInvalid
from channels_im.platforms.dingtalk.crypto import dingtalk_sign
from channels_im.platforms.feishu.crypto import FeishuCipher, feishu_signature
from channels_im.platforms.wecom.crypto import WxBizMsgCrypt
from tests.fixtures import PLATFORM_VECTORS

VECTORS = PLATFORM_VECTORS
WECOM = VECTORS["wecom"]
DINGTALK = VECTORS["dingtalk"]
FEISHU = VECTORS["feishu"]
PREFIX = WECOM["random_prefix_ascii"].encode()


def wecom_crypt(receive_id: str = WECOM["receive_id"]) -> WxBizMsgCrypt:
    return WxBizMsgCrypt(WECOM["token"], WECOM["encoding_aes_key"], receive_id)


def flip(encrypted: str, index: int) -> str:
    """The ciphertext with one byte's top bit flipped: a targeted CBC tamper."""
    data = bytearray(base64.b64decode(encrypted))
    data[index] ^= 0x80
    return base64.b64encode(bytes(data)).decode()


def raw_wecom_ciphertext(plain: bytes) -> str:
    """Encrypt already-padded bytes with the WeCom vector key, bypassing our padding."""
    key = bytes.fromhex(WECOM["aes_key_hex"])
    cipher = AES.new(key, AES.MODE_CBC, iv=bytes.fromhex(WECOM["iv_hex"]))
    return base64.b64encode(cipher.encrypt(plain)).decode()


# WeCom self-built app


def test_it_signs_the_url_verify_echostr():
    url_verify = WECOM["url_verify"]
    signature = wecom_crypt().signature(WECOM["timestamp"], WECOM["nonce"], url_verify["echostr"])
    assert signature == url_verify["msg_signature"]


def test_it_decrypts_the_url_verify_echostr():
    url_verify = WECOM["url_verify"]
    assert wecom_crypt().decrypt(url_verify["echostr"]) == url_verify["echostr_plain"]


def test_it_reproduces_the_url_verify_echostr():
    url_verify = WECOM["url_verify"]
    encrypted = wecom_crypt().encrypt(url_verify["echostr_plain"], random_prefix=PREFIX)
    assert encrypted == url_verify["echostr"]


def test_it_verifies_an_inbound_message_signature():
    inbound = WECOM["inbound"]
    crypt = wecom_crypt()
    assert (
        crypt.signature(WECOM["timestamp"], WECOM["nonce"], inbound["Encrypt"])
        == (inbound["msg_signature"])
    )
    crypt.verify(inbound["msg_signature"], WECOM["timestamp"], WECOM["nonce"], inbound["Encrypt"])


def test_it_decrypts_an_inbound_message():
    inbound = WECOM["inbound"]
    assert f"<Encrypt><![CDATA[{inbound['Encrypt']}]]></Encrypt>" in inbound["post_body"]
    assert wecom_crypt().decrypt(inbound["Encrypt"]) == inbound["plaintext_xml"]


def test_it_reproduces_the_inbound_ciphertext_with_a_fixed_prefix():
    inbound = WECOM["inbound"]
    encrypted = wecom_crypt().encrypt(inbound["plaintext_xml"], random_prefix=PREFIX)
    assert encrypted == inbound["Encrypt"]
    assert len(base64.b64decode(encrypted)) == inbound["padded_len"]


def test_it_encrypts_and_signs_a_passive_reply():
    reply = WECOM["passive_reply"]
    crypt = wecom_crypt()
    encrypted = crypt.encrypt(reply["plaintext_xml"], random_prefix=PREFIX)
    assert encrypted == reply["Encrypt"]
    assert crypt.signature(reply["timestamp"], reply["nonce"], encrypted) == reply["MsgSignature"]


def test_it_decrypts_the_tencent_official_sample():
    sample = WECOM["official_sample_vector"]
    crypt = WxBizMsgCrypt(sample["token"], sample["encoding_aes_key"], sample["receive_id"])
    crypt.verify(sample["msg_signature"], sample["timestamp"], sample["nonce"], sample["echostr"])
    assert crypt.decrypt(sample["echostr"]) == sample["expected_plain"]


# WeCom smart robot: same envelope, empty receive id


def test_it_verifies_and_decrypts_a_smart_robot_request():
    robot = WECOM["smart_robot"]
    crypt = wecom_crypt(robot["receive_id"])
    encrypted = robot["post_body"]["encrypt"]
    crypt.verify(robot["msg_signature"], WECOM["timestamp"], WECOM["nonce"], encrypted)
    assert crypt.decrypt(encrypted) == robot["plaintext_json"]


def test_it_reproduces_the_smart_robot_request_ciphertext():
    robot = WECOM["smart_robot"]
    encrypted = wecom_crypt(robot["receive_id"]).encrypt(robot["plaintext_json"], PREFIX)
    assert encrypted == robot["post_body"]["encrypt"]


def test_it_encrypts_and_signs_a_smart_robot_stream_reply():
    robot = WECOM["smart_robot"]
    body = robot["reply_body"]
    crypt = wecom_crypt(robot["receive_id"])
    encrypted = crypt.encrypt(robot["reply_plaintext_json"], random_prefix=PREFIX)
    assert encrypted == body["encrypt"]
    assert crypt.signature(body["timestamp"], body["nonce"], encrypted) == body["msgsignature"]
    assert crypt.decrypt(encrypted) == robot["reply_plaintext_json"]


# DingTalk


@pytest.mark.parametrize("vector", DINGTALK["robot_http_sign"], ids=["doc", "spec"])
def test_it_signs_a_dingtalk_robot_callback(vector):
    assert dingtalk_sign(vector["timestamp"], vector["app_secret"]) == vector["sign"]


def test_it_signs_a_dingtalk_custom_robot_webhook():
    vector = DINGTALK["custom_robot_sign"]
    sign = dingtalk_sign(vector["timestamp"], vector["secret"])
    assert sign == vector["sign"]
    assert quote_plus(sign) == vector["sign_urlencoded"]
    assert vector["url"].endswith(f"&sign={quote_plus(sign)}")


def test_it_verifies_and_decrypts_a_dingtalk_event():
    vector = DINGTALK["callback_crypto"]
    query, encrypted = vector["request"]["query"], vector["request"]["body"]["encrypt"]
    crypt = WxBizMsgCrypt(vector["token"], vector["aes_key"], vector["owner_key"])
    assert crypt.signature(query["timestamp"], query["nonce"], encrypted) == query["signature"]
    crypt.verify(query["signature"], query["timestamp"], query["nonce"], encrypted)
    assert crypt.decrypt(encrypted) == vector["request"]["plain"]


def test_it_reproduces_the_dingtalk_event_ciphertext():
    vector = DINGTALK["callback_crypto"]
    crypt = WxBizMsgCrypt(vector["token"], vector["aes_key"], vector["owner_key"])
    prefix = vector["random_prefix_ascii"].encode()
    encrypted = crypt.encrypt(vector["request"]["plain"], random_prefix=prefix)
    assert encrypted == vector["request"]["body"]["encrypt"]


def test_it_encrypts_and_signs_the_dingtalk_success_response():
    vector = DINGTALK["callback_crypto"]
    response = vector["response"]
    crypt = WxBizMsgCrypt(vector["token"], vector["aes_key"], vector["owner_key"])
    prefix = vector["random_prefix_ascii"].encode()
    encrypted = crypt.encrypt(response["plain"], random_prefix=prefix)
    assert encrypted == response["encrypt"]
    signature = crypt.signature(response["timeStamp"], response["nonce"], encrypted)
    assert signature == response["msg_signature"]


def test_it_decrypts_the_dingtalk_official_vector():
    vector = DINGTALK["callback_crypto_official_vector"]
    crypt = WxBizMsgCrypt(vector["token"], vector["aes_key"], vector["owner_key"])
    crypt.verify(vector["signature"], vector["timestamp"], vector["nonce"], vector["encrypt"])
    assert crypt.decrypt(vector["encrypt"]) == vector["expected_plain"]


# Feishu


def test_it_decrypts_the_feishu_official_doc_vector():
    vector = FEISHU["official_doc_vector"]
    cipher = FeishuCipher(vector["encrypt_key"])
    assert cipher.decrypt(vector["encrypt"]) == vector["expected_plain"]


def test_it_decrypts_and_reproduces_a_feishu_url_verification():
    vector = FEISHU["url_verification"]
    cipher = FeishuCipher(FEISHU["encrypt_key"])
    assert cipher.decrypt(vector["body"]["encrypt"]) == vector["plain"]
    assert json.loads(vector["plain"])["challenge"] == vector["response"]["challenge"]
    iv = FEISHU["iv_ascii"].encode()
    assert cipher.encrypt(vector["plain"], iv=iv) == vector["body"]["encrypt"]


def test_it_decrypts_a_feishu_event():
    event = FEISHU["event"]
    encrypted = json.loads(event["raw_body"])["encrypt"]
    assert FeishuCipher(FEISHU["encrypt_key"]).decrypt(encrypted) == event["plain"]


def test_it_reproduces_the_feishu_event_ciphertext():
    event = FEISHU["event"]
    cipher = FeishuCipher(FEISHU["encrypt_key"])
    encrypted = cipher.encrypt(event["plain"], iv=FEISHU["iv_ascii"].encode())
    assert encrypted == json.loads(event["raw_body"])["encrypt"]


def test_it_signs_the_feishu_event_over_the_raw_body():
    event, headers = FEISHU["event"], FEISHU["event"]["headers"]
    signature = feishu_signature(
        headers["X-Lark-Request-Timestamp"],
        headers["X-Lark-Request-Nonce"],
        FEISHU["encrypt_key"],
        event["raw_body"].encode(),
    )
    assert signature == headers["X-Lark-Signature"]


def test_it_signs_the_exact_bytes_so_a_reserialized_body_does_not_match():
    headers = FEISHU["event"]["headers"]
    reserialized = json.dumps(json.loads(FEISHU["event"]["raw_body"])).encode()
    signature = feishu_signature(
        headers["X-Lark-Request-Timestamp"],
        headers["X-Lark-Request-Nonce"],
        FEISHU["encrypt_key"],
        reserialized,
    )
    assert signature != headers["X-Lark-Signature"]


# Round trips with real randomness


def test_it_uses_a_fresh_alphanumeric_prefix_by_default():
    crypt = wecom_crypt()
    first, second = crypt.encrypt("你好"), crypt.encrypt("你好")
    assert first != second
    assert crypt.decrypt(first) == crypt.decrypt(second) == "你好"
    key = bytes.fromhex(WECOM["aes_key_hex"])
    raw = AES.new(key, AES.MODE_CBC, iv=key[:16]).decrypt(base64.b64decode(first))
    assert raw[:16].decode("ascii").isalnum()


def test_it_encrypts_an_empty_message():
    crypt = wecom_crypt()
    assert crypt.decrypt(crypt.encrypt("")) == ""


def test_it_uses_a_fresh_iv_for_feishu_by_default():
    cipher = FeishuCipher(FEISHU["encrypt_key"])
    first, second = cipher.encrypt("hello"), cipher.encrypt("hello")
    assert first != second
    assert cipher.decrypt(first) == cipher.decrypt(second) == "hello"


# Unhappy paths: WeCom / DingTalk envelope


@pytest.mark.parametrize(
    "index",
    [
        0,  # flips the top byte of msg_len: the length overruns the envelope
        4,  # flips the first message byte to a lone UTF-8 continuation byte
        -17,  # flips the last padding byte out of 1..32
        -1,  # garbles the whole last block
    ],
    ids=["msg_len", "utf8", "padding", "last-block"],
)
def test_it_rejects_a_tampered_ciphertext(index):
    with pytest.raises(BadPayload):
        wecom_crypt().decrypt(flip(WECOM["inbound"]["Encrypt"], index))


def test_it_rejects_a_message_for_another_receive_id():
    with pytest.raises(BadPayload):
        wecom_crypt("wwSomeoneElse").decrypt(WECOM["inbound"]["Encrypt"])


def test_it_rejects_a_smart_robot_message_at_an_app_and_vice_versa():
    robot = WECOM["smart_robot"]
    with pytest.raises(BadPayload):
        wecom_crypt().decrypt(robot["post_body"]["encrypt"])
    with pytest.raises(BadPayload):
        wecom_crypt(robot["receive_id"]).decrypt(WECOM["inbound"]["Encrypt"])


@pytest.mark.parametrize(
    "last_block",
    [
        bytes(32),  # pad value 0
        bytes([33]) * 32,  # pad value above the 32-byte block
        bytes([0x20]) * 31 + bytes([2]),  # pad value 2, but the byte before it is not 2
    ],
    ids=["zero", "too-large", "inconsistent"],
)
def test_it_rejects_bad_padding(last_block):
    header = PREFIX + (0).to_bytes(4, "big") + bytes(12)
    with pytest.raises(BadPayload):
        wecom_crypt().decrypt(raw_wecom_ciphertext(header + last_block))


def test_it_rejects_an_envelope_shorter_than_its_header():
    # 16 bytes of content and a valid pad: no room for the prefix and msg_len.
    with pytest.raises(BadPayload):
        wecom_crypt().decrypt(raw_wecom_ciphertext(bytes(16) + bytes([16]) * 16))


def test_it_rejects_a_non_utf8_message():
    body = PREFIX + (2).to_bytes(4, "big") + b"\xff\xfe" + WECOM["receive_id"].encode()
    padded = body + bytes([32 - len(body) % 32]) * (32 - len(body) % 32)
    with pytest.raises(BadPayload):
        wecom_crypt().decrypt(raw_wecom_ciphertext(padded))


@pytest.mark.parametrize(
    "encrypted",
    [
        "",
        "not base64 at all!",
        "QUJ",  # base64 missing its padding
        "加密",  # non-ASCII
        base64.b64encode(bytes(15)).decode(),  # not whole AES blocks
        base64.b64encode(bytes(33)).decode(),
    ],
    ids=["empty", "garbage", "unpadded-b64", "non-ascii", "short", "ragged"],
)
def test_it_rejects_malformed_ciphertext(encrypted):
    with pytest.raises(BadPayload):
        wecom_crypt().decrypt(encrypted)


@pytest.mark.parametrize(
    "signature",
    [
        "0" * 40,
        WECOM["inbound"]["msg_signature"].upper(),
        WECOM["inbound"]["msg_signature"][:-1],
        "",
        "签名",
    ],
    ids=["zeros", "uppercase", "truncated", "empty", "non-ascii"],
)
def test_it_rejects_a_wrong_signature(signature):
    encrypted = WECOM["inbound"]["Encrypt"]
    with pytest.raises(SignatureInvalid):
        wecom_crypt().verify(signature, WECOM["timestamp"], WECOM["nonce"], encrypted)


def test_it_rejects_a_signature_for_another_timestamp():
    inbound = WECOM["inbound"]
    with pytest.raises(SignatureInvalid):
        wecom_crypt().verify(
            inbound["msg_signature"], "1700000001", WECOM["nonce"], inbound["Encrypt"]
        )


@pytest.mark.parametrize(
    "key",
    [
        WECOM["encoding_aes_key"][:-1],
        WECOM["encoding_aes_key"] + "A",
        WECOM["encoding_aes_key"][:-1] + "!",
        "",
    ],
    ids=["42-chars", "44-chars", "bad-char", "empty"],
)
def test_it_refuses_an_encoding_aes_key_that_is_not_32_bytes(key):
    with pytest.raises(ValueError):
        WxBizMsgCrypt(WECOM["token"], key, WECOM["receive_id"])


def test_it_refuses_a_random_prefix_of_the_wrong_length():
    with pytest.raises(ValueError):
        wecom_crypt().encrypt("hi", random_prefix=b"short")


# Unhappy paths: Feishu


@pytest.mark.parametrize(
    "index",
    [
        0,  # flips the IV's first byte: '{' becomes an invalid UTF-8 lead byte
        -17,  # flips the last padding byte out of 1..16
        -1,  # garbles the whole last block
    ],
    ids=["iv", "padding", "last-block"],
)
def test_it_rejects_a_tampered_feishu_ciphertext(index):
    encrypted = FEISHU["url_verification"]["body"]["encrypt"]
    with pytest.raises(BadPayload):
        FeishuCipher(FEISHU["encrypt_key"]).decrypt(flip(encrypted, index))


def test_it_rejects_a_feishu_ciphertext_under_another_key():
    with pytest.raises(BadPayload):
        FeishuCipher("another key").decrypt(FEISHU["url_verification"]["body"]["encrypt"])


@pytest.mark.parametrize(
    "encrypted",
    [
        "",
        "%%%",
        "飞书",
        base64.b64encode(bytes(16)).decode(),  # an IV and nothing else
        base64.b64encode(bytes(40)).decode(),  # not whole blocks
    ],
    ids=["empty", "garbage", "non-ascii", "iv-only", "ragged"],
)
def test_it_rejects_malformed_feishu_ciphertext(encrypted):
    with pytest.raises(BadPayload):
        FeishuCipher(FEISHU["encrypt_key"]).decrypt(encrypted)
