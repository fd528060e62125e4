"""A message's life (SPEC §5), in milliseconds: the status it starts in, retries backing off
30 s, 60 s, 120 s … until the fifth failure makes it dead, a letter posted, a dead one retried."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from services.common.errors import IllegalTransition
from services.notifications import domain

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)            # 10:00 in Shanghai
SH_2300 = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)       # 23:00 in Shanghai
SH_0800_NEXT = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)


def message(channel="sms", status="pending", attempts=0, body="您的报修已完成"):
    return SimpleNamespace(channel=channel, status=status, attempts=attempts, body=body,
                           next_attempt_at=NOW, last_error=None, posted_at=None,
                           posted_by=None, tracking_number=None)


@pytest.mark.parametrize("channel, now, renderable, opted_out, send_now, expected", [
    ("sms", NOW, True, False, False, ("pending", NOW)),
    ("sms", SH_2300, True, False, False, ("pending", SH_0800_NEXT)),   # quiet hours: the morning
    ("sms", SH_2300, True, False, True, ("pending", SH_2300)),         # urgent
    ("email", SH_2300, True, False, False, ("pending", SH_2300)),
    ("letter", NOW, True, False, False, ("awaiting_post", None)),
    ("sms", NOW, True, True, False, ("skipped", None)),
    ("sms", NOW, False, True, False, ("dead", None)),                  # no template to fill
])
def test_a_new_message_starts(channel, now, renderable, opted_out, send_now, expected):
    assert domain.first_status(channel, now, renderable=renderable, opted_out=opted_out,
                               send_now=send_now) == expected


def test_failures_back_off_doubling_until_the_last_attempt_makes_it_dead():
    sms, policy = message(), domain.RetryPolicy()          # 5 attempts, 30 s base
    waits = []
    for _ in range(4):
        assert domain.record_attempt(sms, NOW, "ConnectionError: gateway down", policy) == "failed"
        waits.append((sms.next_attempt_at - NOW).total_seconds())
    assert waits == [30, 60, 120, 240]
    assert domain.record_attempt(sms, NOW, "ConnectionError: gateway down", policy) == "dead"
    assert (sms.attempts, sms.next_attempt_at, sms.last_error) == (5, None, "ConnectionError: gateway down")


def test_a_delivered_message_is_sent_and_forgets_its_last_error():
    sms = message(status="failed", attempts=2)
    sms.last_error = "Timeout"
    assert domain.record_attempt(sms, NOW, None, domain.RetryPolicy(max_attempts=3)) == "sent"
    assert (sms.attempts, sms.next_attempt_at, sms.last_error) == (3, None, None)


def test_an_opt_out_after_the_message_was_made_skips_it():
    sms = message()
    assert domain.skip(sms) == "skipped" and sms.next_attempt_at is None and sms.attempts == 0


def test_a_dead_message_may_be_retried_at_once_keeping_its_attempts():
    dead = message(status="dead", attempts=5)
    assert domain.actions(dead) == ["retry"]
    domain.retry(dead, NOW + timedelta(hours=1))
    assert (dead.status, dead.attempts, dead.next_attempt_at) == ("pending", 5, NOW + timedelta(hours=1))
    # its next failure is past the limit already: dead again, not another round of retries
    assert domain.record_attempt(dead, NOW, "Timeout", domain.RetryPolicy()) == "dead"


@pytest.mark.parametrize("status, body", [("sent", "x"), ("pending", "x"), ("skipped", "x"),
                                          ("dead", "")])
def test_only_a_failed_or_dead_message_with_a_body_is_retried(status, body):
    with pytest.raises(IllegalTransition) as raised:
        domain.retry(message(status=status, body=body), NOW)
    assert raised.value.extra["allowed_actions"] == []


def test_a_letter_awaits_posting_then_is_sent_with_who_and_the_tracking_number():
    letter = message(channel="letter", status="awaiting_post")
    assert domain.actions(letter) == ["post"]
    domain.post(letter, NOW, "agent-li", "SF1234567890")
    assert (letter.status, letter.posted_at, letter.posted_by, letter.tracking_number) == (
        "sent", NOW, "agent-li", "SF1234567890")
    with pytest.raises(IllegalTransition) as raised:
        domain.post(letter, NOW, "agent-li")
    assert raised.value.extra["current_status"] == "sent"
