"""The Idempotency-Key store on a real database (SQLite and PostgreSQL): the first answer is
replayed, a reused key is refused, a request in flight blocks its duplicate, 5xx are not kept."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from services.common.errors import ValidationFailed
from services.gateway import idempotency
from services.gateway.idempotency import InFlight, Stored
from services.gateway.storage import IdempotentRequest

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=60)
BODY = b'{"kind": "repair", "site": "001"}'
DIGEST = idempotency.fingerprint(BODY)
CREATE = "POST /api/v1/tickets"


def claim(session, key="k1", caller="alice", request=CREATE, digest=DIGEST, now=NOW):
    return idempotency.claim(session, caller, key, request, digest, now, LEASE)


def answer(session, key="k1", caller="alice", status=201, body='{"id": "t1"}'):
    idempotency.complete(session, caller, key, status, "application/json", body, NOW)


def test_the_first_request_with_a_key_goes_ahead(db_session):
    assert claim(db_session) is None


def test_the_same_key_and_body_replays_the_first_answer(db_session):
    claim(db_session)
    answer(db_session)
    assert claim(db_session, now=NOW + timedelta(minutes=5)) == Stored(201, "application/json", '{"id": "t1"}')


def test_a_refusal_is_replayed_too(db_session):
    claim(db_session)
    answer(db_session, status=422, body='{"status": 422}')
    assert claim(db_session).status == 422


def test_the_same_key_with_another_body_is_refused_naming_the_header(db_session):
    claim(db_session)
    answer(db_session)
    with pytest.raises(ValidationFailed) as caught:
        claim(db_session, digest=idempotency.fingerprint(b'{"kind": "repair", "site": "002"}'))
    assert "Idempotency-Key" in caught.value.extra["errors"]


def test_the_same_key_on_another_path_is_refused(db_session):
    claim(db_session)
    answer(db_session)
    with pytest.raises(ValidationFailed):
        claim(db_session, request="POST /api/v1/sites")


def test_a_duplicate_while_the_first_is_in_flight_is_a_conflict(db_session):
    claim(db_session)
    with pytest.raises(InFlight) as caught:
        claim(db_session, now=NOW + timedelta(seconds=1))
    assert caught.value.status == 409


def test_a_released_key_can_be_used_again(db_session):
    """A 503 is not kept: the client retries with the same key and the request runs."""
    claim(db_session)
    idempotency.release(db_session, "alice", "k1")
    assert db_session.scalars(select(IdempotentRequest)).all() == []
    assert claim(db_session) is None


def test_a_claim_left_by_a_gateway_that_died_is_taken_over_after_the_lease(db_session):
    claim(db_session)
    assert claim(db_session, now=NOW + LEASE + timedelta(seconds=1)) is None
    with pytest.raises(InFlight):
        claim(db_session, now=NOW + LEASE + timedelta(seconds=2))


def test_an_answer_past_retention_no_longer_binds_the_key(db_session):
    claim(db_session)
    answer(db_session)
    later = NOW + idempotency.RETENTION + timedelta(seconds=1)
    assert claim(db_session, digest=idempotency.fingerprint(b"{}"), now=later) is None


def test_keys_are_scoped_per_caller(db_session):
    claim(db_session, caller="alice")
    answer(db_session, caller="alice")
    assert claim(db_session, caller="bob", digest=idempotency.fingerprint(b"{}")) is None


def test_the_fingerprint_ignores_spacing_and_key_order():
    assert idempotency.fingerprint(b'{"a": 1, "b": [1, 2]}') == idempotency.fingerprint(b'{"b":[1,2],"a":1}')
    assert idempotency.fingerprint(b'{"a": 1}') != idempotency.fingerprint(b'{"a": 2}')
    assert idempotency.fingerprint(b"not json") == idempotency.fingerprint(b"not json")


@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "ключ"])
def test_an_unusable_key_is_refused_naming_the_header(db_session, key):
    with pytest.raises(ValidationFailed) as caught:
        claim(db_session, key=key)
    assert list(caught.value.extra["errors"]) == ["Idempotency-Key"]


def test_purge_drops_only_answers_past_retention(db_session):
    claim(db_session, key="old")
    answer(db_session, key="old")
    claim(db_session, key="new", now=NOW + timedelta(hours=23))
    removed = idempotency.purge(db_session, NOW + idempotency.RETENTION + timedelta(minutes=1))
    assert removed == 1
    assert [r.key for r in db_session.scalars(select(IdempotentRequest))] == ["new"]
