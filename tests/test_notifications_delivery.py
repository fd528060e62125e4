"""Notifications delivery (issue 6): retries with backoff and a dead letter, every attempt logged,
a real HTTP SMS gateway and a real SMTP server (both local, started here), SMS quiet hours and
opt-outs. On SQLite and PostgreSQL, without a broker."""
import email
import email.policy
import http.server
import socket
import socketserver
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import make_engine, new_id
from services.common.errors import Forbidden
from services.common.migrate import upgrade
from services.notifications import domain
from services.notifications.domain import Draft, first_attempt_at
from services.notifications.providers import delivery_from
from services.notifications.rendering import render
from services.notifications.storage import DeliveryAttempt, Message
from services.notifications.tests.support import NEIGHBOUR, NOW, ZHANG, callback_due_body, workers



@pytest.fixture
def engine(db_url):
    upgrade("notifications", db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def service(engine):
    """`service(settings, now=..., identity=...)`: a fresh worker per call, as Nameko makes one."""
    with workers(engine) as make:
        yield make


def sms_row(engine):
    with Session(engine) as session:
        return session.scalars(select(Message).where(Message.channel == "sms")).one()


def attempts_of(engine, message_id):
    with Session(engine) as session:
        return [(a.ok, a.error is None) for a in session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id)
            .order_by(DeliveryAttempt.id))]


# -- an SMS gateway over HTTP ----------------------------------------------------------------

class SmsGateway:
    """A local HTTP server that answers 503 to its first `failures` requests, then 200."""

    def __init__(self, failures):
        self.failures, self.received = failures, []
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                import json
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.received.append(body)
                ok = len(gateway.received) > gateway.failures
                self.send_response(200 if ok else 503)
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"busy")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    made = []

    def make(failures):
        made.append(SmsGateway(failures))
        return made[-1]

    yield make
    for g in made:
        g.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_sms_fails_twice_then_goes_out_exactly_once(service, engine, gateway):
    sms_gateway = gateway(failures=2)
    settings = {"sms_provider": "http", "sms_http_url": sms_gateway.url, "retry_base_seconds": 30}
    service(settings).on_callback_due(callback_due_body())
    first = sms_row(engine)
    assert (first.status, first.attempts) == ("failed", 1)
    assert first.next_attempt_at == NOW + timedelta(seconds=30)
    assert "503" in first.last_error

    assert service(settings).deliver(as_of=(NOW + timedelta(seconds=10)).isoformat())["failed"] == 0
    assert service(settings).deliver(as_of=NOW + timedelta(seconds=30))["failed"] == 1
    second = sms_row(engine)
    assert (second.status, second.attempts) == ("failed", 2)
    assert second.next_attempt_at == NOW + timedelta(seconds=30 + 60)   # doubled

    assert service(settings).deliver(as_of=NOW + timedelta(seconds=90))["sent"] == 1
    sent = sms_row(engine)
    assert (sent.status, sent.attempts, sent.next_attempt_at, sent.last_error) == ("sent", 3, None, None)
    for days in (1, 2, 30):
        service(settings).deliver(as_of=NOW + timedelta(days=days))
    assert len(sms_gateway.received) == 3
    assert sms_gateway.received[-1]["to"] == "13812341234"
    assert sms_gateway.received[-1]["text"] == sent.body
    assert attempts_of(engine, sent.id) == [(False, False), (False, False), (True, True)]


def test_an_sms_gateway_down_for_good_leaves_the_message_dead(service, engine):
    settings = {"sms_provider": "http", "sms_http_url": f"http://127.0.0.1:{free_port()}/send",
                "retry_base_seconds": 1, "max_attempts": 5, "sms_http_timeout_seconds": 2}
    service(settings).on_callback_due(callback_due_body())
    for hours in range(1, 10):
        service(settings).deliver(as_of=NOW + timedelta(hours=hours))
    dead = sms_row(engine)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == ("dead", 5, None)
    assert "unreachable" in dead.last_error
    assert attempts_of(engine, dead.id) == [(False, False)] * 5
    listed = {m["channel"]: m for m in service(settings).list_messages()["items"]}
    assert (listed["sms"]["status"], listed["sms"]["attempts"]) == ("dead", 5)
    assert listed["staff"]["status"] == "sent"


def test_a_claimed_message_is_not_tried_by_another_sweep(service, engine):
    """While one replica delivers a message (its lease), another sweep leaves it alone."""
    inner = []

    class Reentrant:
        def deliver(self, message):
            if message.channel == "sms":
                inner.append(service(delivery=delivery_from({})).deliver(as_of=NOW + timedelta(minutes=1)))
            return "sent"

    delivery = delivery_from({})
    delivery.by_channel["sms"] = Reentrant()
    service(delivery=delivery).on_callback_due(callback_due_body())
    assert inner == [{"sent": 0, "failed": 0, "dead": 0, "skipped": 0}]
    assert (sms_row(engine).status, sms_row(engine).attempts) == ("sent", 1)


# -- email over SMTP -------------------------------------------------------------------------

class SmtpSink:
    """The least SMTP server that takes mail: enough for smtplib, keeps each message's data."""

    def __init__(self):
        self.messages = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.reply(b"220 sink ready")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line.strip().split(b" ", 1)[0].upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.reply(b"250 sink")
                    elif verb == b"DATA":
                        self.reply(b"354 go on")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        sink.messages.append(data[:-5].replace(b"\r\n..", b"\r\n."))
                        self.reply(b"250 queued")
                    elif verb == b"QUIT":
                        self.reply(b"221 bye")
                        return
                    else:
                        self.reply(b"250 ok")

            def reply(self, text):
                self.wfile.write(text + b"\r\n")
                self.wfile.flush()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_an_email_arrives_through_smtp_with_its_rendered_body(service, engine):
    sink = SmtpSink()
    try:
        body = render(Draft("sms", "zhang@example.com", "satisfaction_survey", {
            "code": "001-R-00007", "kind": "报修", "unit": "0011020304", "description": "",
            "important": False, "reporter_name": "张三", "reporter_phone": "13812341234",
            "completed_at": "2026-11-23 10:00", "due_at": "2026-11-24 10:00"}))
        with Session(engine) as session:
            session.add(Message(id=new_id(), channel="email", recipient="zhang@example.com",
                                person_id="p-zhang", event="ticketing.callback_due", event_id="e-1",
                                template="satisfaction_survey", body=body, status="pending",
                                attempts=0, site="001", created_at=NOW, next_attempt_at=NOW))
            session.commit()
        settings = {"email_provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
                    "smtp_from": "desk@propdesk.test"}
        assert service(settings).deliver()["sent"] == 1
        [raw] = sink.messages
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert mail["To"] == "zhang@example.com" and mail["From"] == "desk@propdesk.test"
        assert mail.get_content().strip() == body
        assert service(settings).deliver()["sent"] == 0
        assert len(sink.messages) == 1
    finally:
        sink.close()


# -- quiet hours and opt-outs ----------------------------------------------------------------

SH_2300 = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)      # 23:00 in Shanghai
SH_0800_NEXT = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("now,expected", [
    (datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc), datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)),
    (SH_2300, SH_0800_NEXT),
    (datetime(2026, 11, 23, 19, 30, tzinfo=timezone.utc), SH_0800_NEXT),  # 03:30 local
    (datetime(2026, 11, 23, 13, 59, tzinfo=timezone.utc), datetime(2026, 11, 23, 13, 59, tzinfo=timezone.utc)),
    (datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc), SH_0800_NEXT),                   # 22:00 local
    (datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc), SH_0800_NEXT),                    # 08:00 local
])
def test_quiet_hours_hold_a_non_urgent_sms_until_eight_local(now, expected):
    assert first_attempt_at("sms", False, now) == expected
    assert first_attempt_at("sms", True, now) == now
    assert first_attempt_at("email", False, now) == now


def test_quiet_hours_follow_the_sites_time_zone():
    # 23:00 UTC is 07:00 in Shanghai (held until 08:00) but 23:00 in London (held overnight)
    late = datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc)
    assert first_attempt_at("sms", False, late) == datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)
    assert first_attempt_at("sms", False, late, "Europe/London") == datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


class Recording:
    sends_out = True

    def __init__(self):
        self.sent = []

    def deliver(self, message):
        self.sent.append(message.recipient)
        return "sent"


def recording_sms():
    sms, delivery = Recording(), delivery_from({})
    delivery.by_channel["sms"] = sms
    return sms, delivery


def test_an_sms_made_at_night_waits_for_the_morning_sweep(service, engine):
    sms, delivery = recording_sms()
    service(now=SH_2300, delivery=delivery).on_callback_due(callback_due_body())
    held = sms_row(engine)
    assert (held.status, held.attempts, held.next_attempt_at) == ("pending", 0, SH_0800_NEXT)
    assert service(delivery=delivery).deliver(as_of=SH_0800_NEXT - timedelta(minutes=1))["sent"] == 0
    assert sms.sent == []
    assert service(delivery=delivery).deliver(as_of=SH_0800_NEXT)["sent"] == 1
    assert (sms_row(engine).status, sms_row(engine).attempts) == ("sent", 1)
    assert sms.sent == ["13812341234"]


def test_an_urgent_repair_is_texted_at_night(service, engine):
    sms, delivery = recording_sms()
    service(now=SH_2300, delivery=delivery).on_callback_due(callback_due_body(priority="urgent"))
    assert (sms_row(engine).status, sms_row(engine).attempts) == ("sent", 1)
    assert sms.sent == ["13812341234"]


def test_the_store_only_provider_holds_nothing_back_at_night(service, engine):
    """Nothing reaches a phone through it, so the record is complete at once, at any hour."""
    service(now=SH_2300).on_callback_due(callback_due_body())
    assert (sms_row(engine).status, sms_row(engine).attempts) == ("sent", 1)


def test_an_opted_out_resident_gets_no_sms_and_the_message_is_skipped(service, engine):
    assert service(identity=ZHANG).set_opt_out("p-zhang", "sms", True)["opted_out"] is True
    service(identity=ZHANG).set_opt_out("p-zhang", "sms", True)          # twice is the same
    sms = Recording()
    delivery = delivery_from({})
    delivery.by_channel["sms"] = sms
    service(delivery=delivery).on_callback_due(callback_due_body())
    service(delivery=delivery).deliver(as_of=NOW + timedelta(days=3))
    skipped = sms_row(engine)
    assert (skipped.status, skipped.attempts, skipped.next_attempt_at) == ("skipped", 0, None)
    assert sms.sent == []
    assert attempts_of(engine, skipped.id) == []
    [listed] = service(identity=ZHANG).list_messages()["items"]
    assert listed["status"] == "skipped"

    service(identity=ZHANG).set_opt_out("p-zhang", "sms", False)
    service(delivery=delivery).on_callback_due(callback_due_body())
    assert sms.sent == ["13812341234"]


def test_a_resident_may_not_opt_someone_else_out(service):
    with pytest.raises(Forbidden):
        service(identity=NEIGHBOUR).set_opt_out("p-zhang", "sms", True)


def test_residents_may_not_drive_the_sweep(service):
    with pytest.raises(Forbidden):
        service(identity=ZHANG).deliver()


def test_retry_backoff_doubles_from_the_base():
    assert [domain.retry_at(NOW, n, 30) - NOW for n in range(3)] == [
        timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]


@pytest.mark.parametrize("as_of", ["yesterday", "2026-11-23T10:00:00", 42])
def test_a_bad_as_of_names_its_field(service, as_of):
    from services.common.errors import ValidationFailed
    with pytest.raises(ValidationFailed) as caught:
        service().deliver(as_of=as_of)
    assert "as_of" in caught.value.extra["errors"]
