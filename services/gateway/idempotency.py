"""Idempotency-Key: the first answer to a POST is kept per (caller, key) and replayed for the
same request; the key reused for another request, or while the first is still in flight, is
refused. Only answers below 500 are kept here, so a 503 can be retried with the same key.

That alone would not make a retry safe: a 503 (the RPC's deadline passed) says nothing of
whether the service ran the request, and one that a crashed replica held is redelivered to the
next. So the key also travels with the RPC (`CallContext.carry_idempotency`) and the service
owning the effect records its answer in the effect's transaction (`UnitOfWork.once`): a retry
after a 503 that reaches the service gets the first answer, never a second effect."""
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.common.errors import Conflict, ValidationFailed
from services.gateway.storage import IdempotentRequest

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION = timedelta(hours=24)
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class InFlight(Conflict):
    type = "https://propdesk.dev/problems/idempotency-in-flight"
    title = "Request with this Idempotency-Key still in progress"


@dataclass(frozen=True)
class Stored:
    status: int
    content_type: str
    body: str


def check_key(key):
    if not _KEY.fullmatch(key):
        raise ValidationFailed.from_messages({HEADER: ["1 to 200 visible ASCII characters"]})


def fingerprint(raw):
    """The same JSON document gives the same fingerprint, however it is spaced or ordered."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeDecodeError):
        canonical = bytes(raw)
    return hashlib.sha256(canonical).hexdigest()


def request_digest(request, fingerprint):
    """What the service compares a retry with: the same route and the same JSON body."""
    return hashlib.sha256(f"{request}\n{fingerprint}".encode()).hexdigest()


def claim(session, caller, key, request, digest, now, lease, retention=RETENTION):
    """Claim `key` for this request: None to go ahead (then `complete` or `release` it), or the
    Stored answer to replay. A claim left in flight longer than `lease` (its gateway died) and
    an answer older than `retention` are taken over."""
    check_key(key)
    try:
        session.add(IdempotentRequest(caller=caller, key=key, request=request,
                                      fingerprint=digest, created_at=now))
        session.commit()
        return None
    except IntegrityError:
        session.rollback()
    mine = (IdempotentRequest.caller == caller) & (IdempotentRequest.key == key)
    taken_over = session.execute(
        update(IdempotentRequest).where(mine, or_(
            IdempotentRequest.status.is_(None) & (IdempotentRequest.created_at < now - lease),
            IdempotentRequest.created_at < now - retention,
        )).values(request=request, fingerprint=digest, status=None, content_type=None,
                  body=None, created_at=now, completed_at=None)).rowcount
    session.commit()
    if taken_over:
        return None
    row = session.execute(select(IdempotentRequest).where(mine)).scalar_one_or_none()
    if row is None:   # released between our insert and our look: claim it afresh
        return claim(session, caller, key, request, digest, now, lease, retention)
    if row.request != request or row.fingerprint != digest:
        raise ValidationFailed.from_messages({HEADER: [
            f"already used for another request ({row.request}); use a new key for a new request"]})
    if row.status is None:
        raise InFlight(f"the first request with this {HEADER} is still in progress; retry later",
                       {"retry_after_seconds": 1})
    return Stored(row.status, row.content_type, row.body)


def complete(session, caller, key, status, content_type, body, now):
    session.execute(update(IdempotentRequest).where(
        IdempotentRequest.caller == caller, IdempotentRequest.key == key,
        IdempotentRequest.status.is_(None),
    ).values(status=status, content_type=content_type, body=body, completed_at=now))
    session.commit()


def release(session, caller, key):
    """Forget an in-flight claim whose answer is not kept (a 5xx), so the client can retry:
    the service that may have run it replays its own record of the answer."""
    session.execute(delete(IdempotentRequest).where(
        IdempotentRequest.caller == caller, IdempotentRequest.key == key,
        IdempotentRequest.status.is_(None)))
    session.commit()


def purge(session, now, retention=RETENTION):
    """Drop answers past their retention; safe to run in every replica at once."""
    removed = session.execute(delete(IdempotentRequest).where(
        IdempotentRequest.created_at < now - retention)).rowcount
    session.commit()
    return removed
