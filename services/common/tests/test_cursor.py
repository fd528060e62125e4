"""Pagination cursors are opaque and signed: a list takes back only what it issued."""
import base64
import json

import pytest

from services.common.db import decode_cursor, encode_cursor
from services.common.errors import ValidationFailed


def test_an_issued_cursor_comes_back_as_its_value():
    assert decode_cursor(encode_cursor("0190c3a2b4c5d6e7f8a9b0c1")) == "0190c3a2b4c5d6e7f8a9b0c1"
    assert decode_cursor(encode_cursor(400), int) == 400


def unsigned(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    unsigned("t-1"), unsigned({"id": {"$gt": ""}}), unsigned(10 ** 30),
    unsigned("t-1") + "." + encode_cursor("t-2").partition(".")[2],  # another cursor's signature
    encode_cursor("t-1")[:-1] + ("A" if encode_cursor("t-1")[-1] != "A" else "B"),
    "not base64 at all", ".", "é.é", None, 7, {"after": "t-1"},
])
def test_a_cursor_the_server_did_not_issue_is_a_422_naming_it(cursor):
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor)
    assert caught.value.extra == {"errors": {"cursor": ["not a cursor"]}}


def test_a_cursor_of_another_kind_of_list_is_refused():
    with pytest.raises(ValidationFailed):
        decode_cursor(encode_cursor(400))  # an offset where a key is expected
    with pytest.raises(ValidationFailed):
        decode_cursor(encode_cursor("t-1"), int)
    with pytest.raises(ValidationFailed):
        decode_cursor(encode_cursor(True), int)
