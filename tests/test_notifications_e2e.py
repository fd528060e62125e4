"""Issue 6's "done", as a new user tries it: the whole system as OS processes with the real
providers, an SMTP mailbox and an HTTP SMS endpoint on localhost. A repair completed through the
gateway puts an email in the mailbox and a satisfaction SMS through the endpoint; with the
endpoint stopped the SMS is retried and then dead; started again, a failing SMS goes out by
itself and the dead one on an operator's retry — each exactly once. The delivery sweep is
driven through `POST /admin/sweeps/notifications` at later instants, as an operator replays."""
import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest

from services.notifications.sinks import SmsEndpoint, SmtpMailbox
from tests.conftest import JWT_SECRET, OUTBOX_POLL_SECONDS, RPC_TIMEOUT
from tests.flows import eventually, repair_payload, site_payload, unit_payload
from bench.harness import System, Vhost, free_port

pytestmark = pytest.mark.e2e

SITE, UNIT, PHONE, EMAIL = "001", "0011020305", "13900005678", "lisi@example.com"


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """The mailbox and the SMS endpoint, and the system wired to them."""
    mailbox = SmtpMailbox().start()
    sms_port = free_port()
    endpoint = {"now": SmsEndpoint(port=sms_port).start()}   # replaced when restarted
    env = {"PROPDESK_SMS_PROVIDER": "http", "PROPDESK_SMS_HTTP_URL": f"http://127.0.0.1:{sms_port}/send",
           "PROPDESK_EMAIL_PROVIDER": "smtp", "PROPDESK_SMTP_HOST": "127.0.0.1",
           "PROPDESK_SMTP_PORT": str(mailbox.port), "PROPDESK_SMTP_FROM": "desk@propdesk.test",
           "PROPDESK_NOTIFY_RETRY_BASE_SECONDS": "60", "PROPDESK_NOTIFY_MAX_ATTEMPTS": "3",
           "PROPDESK_SMS_QUIET_HOURS": "off"}
    with Vhost("propdesk-e2e-notify") as vhost:
        system = System(str(tmp_path_factory.mktemp("system")), vhost.amqp_uri, secret=JWT_SECRET,
                        rpc_timeout=RPC_TIMEOUT, outbox_poll_seconds=OUTBOX_POLL_SECONDS, env=env)
        try:
            system.start().wait_ready()
            head_office = system.client("hq", ["*"], sub="hq-zhao")
            assert head_office.post("/sites", site_payload(SITE)).status_code == 201
            unit = unit_payload(UNIT, PHONE, owner="李四")
            assert head_office.post("/units", {**unit, "owner": {**unit["owner"], "email": EMAIL}}).status_code == 201
            yield system, mailbox, endpoint, sms_port
        finally:
            system.shutdown()
            endpoint["now"].close()
            mailbox.close()


def complete_a_repair(system, description):
    desk, tech = system.client("agent", [SITE], sub="agent-li"), system.client("technician", [SITE], sub="tech-wang")
    ticket = desk.post("/tickets", repair_payload(UNIT, description)).json()
    assert desk.post(f"/tickets/{ticket['id']}/dispatch", {"assignee": "tech-wang"}).status_code == 200
    assert tech.post(f"/tickets/{ticket['id']}/arrive", {}).status_code == 200
    done = tech.post(f"/tickets/{ticket['id']}/complete", {"result": "已修复", "signed_off": True})
    assert done.status_code == 200, done.text
    return ticket


def satisfaction(system, ticket, channel="sms", done=lambda m: True):
    desk = system.client("agent", [SITE], sub="agent-li")

    def probe():
        items = desk.get("/messages", ticket_id=ticket["id"], channel=channel).json()["items"]
        return items[0] if items else None
    return eventually(probe, lambda m: m is not None and done(m),
                      what=f"the {channel} of ticket {ticket['code']}")


def sweep_at(system, later):
    response = system.client("ops_admin", ["*"], sub="ops").post(
        "/admin/sweeps/notifications", {"as_of": later.isoformat()})
    assert response.status_code == 200, response.text
    return response.json()


def texts_about(endpoint, ticket):
    return [sms for sms in endpoint.received if ticket["code"] in sms["text"]]


def test_a_completed_repair_mails_the_owner_and_texts_them_through_the_endpoint(outside):
    system, mailbox, endpoint, _ = outside
    ticket = complete_a_repair(system, "卫生间灯不亮")
    mail_message = satisfaction(system, ticket, "email", lambda m: m["status"] == "sent")
    sms_message = satisfaction(system, ticket, "sms", lambda m: m["status"] == "sent")
    assert (mail_message["recipient"], sms_message["recipient"]) == (EMAIL, PHONE)

    mails = [email.message_from_bytes(raw, policy=email.policy.default) for raw in mailbox.messages]
    [mail] = [m for m in mails if ticket["code"] in m["Subject"]]
    assert mail["To"] == EMAIL and mail["From"] == "desk@propdesk.test"
    assert mail["Subject"] == f"您的报修（单号 {ticket['code']}）已处理完毕，请为本次服务评分"
    [sms] = texts_about(endpoint["now"], ticket)
    assert sms["to"] == PHONE and "请回复 1–5 分" in sms["text"]


def test_with_the_endpoint_down_an_sms_is_retried_then_dead_and_an_operators_retry_sends_it_once(outside):
    system, _, endpoint, port = outside
    endpoint["now"].close()
    ticket = complete_a_repair(system, "阳台地漏堵塞")
    first = satisfaction(system, ticket, done=lambda m: m["status"] == "failed")
    assert first["attempts"] == 1 and "unreachable" in first["last_error"]
    # the email does not wait for the SMS
    assert satisfaction(system, ticket, "email", lambda m: m["status"] == "sent")

    now = datetime.now(timezone.utc)
    assert sweep_at(system, now + timedelta(minutes=1))["failed"] == 1        # retried after 60 s
    assert sweep_at(system, now + timedelta(minutes=3))["dead"] == 1          # then 120 s: the 3rd
    dead = system.client("agent", [SITE], sub="agent-li").get(f"/messages/{first['id']}").json()
    assert (dead["status"], dead["attempts"], dead["next_attempt_at"]) == ("dead", 3, None)
    assert [attempt["ok"] for attempt in dead["attempt_log"]] == [False, False, False]
    assert sweep_at(system, now + timedelta(hours=5))["dead"] == 0             # nothing more
    dead_letters = system.client("agent", [SITE], sub="agent-li").get("/messages", status="dead").json()
    assert first["id"] in [m["id"] for m in dead_letters["items"]]

    endpoint["now"] = SmsEndpoint(port=port).start()
    assert system.client("agent", [SITE]).post(f"/messages/{first['id']}/retry", {}).status_code == 403
    retried = system.client("ops_admin", ["*"], sub="ops").post(f"/messages/{first['id']}/retry", {})
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("sent", 4)
    sweep_at(system, now + timedelta(hours=6))
    again = system.client("ops_admin", ["*"], sub="ops").post(f"/messages/{first['id']}/retry", {})
    assert again.status_code == 409 and again.json()["current_status"] == "sent"
    assert len(texts_about(endpoint["now"], ticket)) == 1


def test_an_sms_failing_while_the_endpoint_is_down_goes_out_once_when_it_is_back(outside):
    system, _, endpoint, port = outside
    endpoint["now"].close()
    ticket = complete_a_repair(system, "门锁松动")
    failing = satisfaction(system, ticket, done=lambda m: m["status"] == "failed")
    endpoint["now"] = SmsEndpoint(port=port).start()
    now = datetime.now(timezone.utc)
    assert sweep_at(system, now + timedelta(minutes=1))["sent"] == 1
    for minutes in (2, 10, 60):
        sweep_at(system, now + timedelta(minutes=minutes))
    sent = system.client("agent", [SITE], sub="agent-li").get(f"/messages/{failing['id']}").json()
    assert (sent["status"], sent["attempts"]) == ("sent", 2)
    assert len(texts_about(endpoint["now"], ticket)) == 1


def test_templates_letters_and_sweeps_answer_through_the_gateway_with_their_rules(outside):
    system = outside[0]
    desk = system.client("agent", [SITE], sub="agent-li")
    listed = desk.get("/templates").json()["items"]
    assert {("satisfaction_survey", "email"), ("bill", "sms"), ("warranty_expiry", "sms")} <= {
        (t["name"], t["channel"]) for t in listed}
    preview = desk.post("/templates/bill/email/preview", {"context": {"amount": "300.00"}})
    assert preview.status_code == 200 and "300.00" in preview.json()["subject"]
    assert desk.post("/templates/bill/letter/preview", {}).status_code == 404
    bad = desk.post("/templates/bill/sms/preview", {"context": "amount"})
    assert bad.status_code == 422 and "context" in bad.json()["errors"]

    assert desk.post("/admin/sweeps/notifications", {}).status_code == 403
    not_an_instant = system.client("ops_admin", ["*"]).post("/admin/sweeps/notifications", {"as_of": "soon"})
    assert not_an_instant.status_code == 422 and "as_of" in not_an_instant.json()["errors"]

    owner = desk.get(f"/units/{UNIT}").json()["people"][0]["id"]
    resident = system.client("resident", [SITE], sub="u-lisi", person_id=owner)
    assert resident.post("/persons/p-someone-else/opt-outs", {"channel": "sms"}).status_code == 404
    mine = resident.post(f"/persons/{owner}/opt-outs", {"channel": "sms"})
    assert mine.status_code == 200 and mine.json()["opted_out"] is True, mine.text
    assert resident.post(f"/persons/{owner}/opt-outs", {"channel": "fax"}).status_code == 422
    # a person registry does not know is 404 to staff too (SPEC §7: the object is checked)
    assert desk.post("/persons/p-nobody/opt-outs", {"channel": "sms"}).status_code == 404
    resident.post(f"/persons/{owner}/opt-outs", {"channel": "sms", "opted_out": False})

    missing = desk.get("/messages/no-such-message")
    assert missing.status_code == 404
    assert desk.get("/messages/no-such-message/document").status_code == 404
