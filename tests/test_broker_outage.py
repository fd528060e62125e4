"""A broker restart costs a pause, not an outage: with the whole system running and a request
in the middle of ticketing, the broker goes away for longer than Nameko's own reply retries
last (about 12 s) and comes back. No process dies, `/ready` names the broker while it is away,
every consumer reconnects, and the client's retry with its Idempotency-Key gets the ticket
ticketing made meanwhile, once.

The broker is shared with other tests running at the same time, so the outage is a cut
BrokerLink between this system and RabbitMQ (what the services see of a restart: their
connections drop and new ones are refused), not a real stop_app."""
import threading
import time
import uuid

import pytest
import requests

from services.common import SERVICES
from services.common.entrypoints import OUTAGE_RETRY_POLICY
from tests.conftest import JWT_SECRET, OUTBOX_POLL_SECONDS, RPC_TIMEOUT
from tests.flows import (
    REPAIR_TO_COMPLETION, SITE, SUB_OF_ROLE, eventually, repair_payload, site_payload, unique,
    unit_payload,
)
from bench.harness import System
from tests.test_idempotency_e2e import ticketing_held

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 15
UNIT = "0010101001"


def _policy_seconds(policy):
    waits, interval = [], policy["interval_start"]
    for _ in range(policy["max_retries"]):
        waits.append(min(interval, policy["interval_max"]))
        interval += policy["interval_step"]
    return sum(waits)


def test_replies_wait_for_the_broker_for_more_than_a_minute():
    assert _policy_seconds(OUTAGE_RETRY_POLICY) >= 60


def test_a_broker_outage_mid_request_costs_a_pause_and_loses_nothing(tmp_path, vhost, broker_link):
    system = System(str(tmp_path), vhost.amqp_uri_at(broker_link.server), secret=JWT_SECRET,
                    rpc_timeout=RPC_TIMEOUT, outbox_poll_seconds=OUTBOX_POLL_SECONDS)
    with system:
        system.wait_ready()
        head_office = system.client("hq", ["*"], sub="hq-zhao")
        assert head_office.post("/sites", site_payload(SITE)).status_code == 201
        assert head_office.post("/units", unit_payload(UNIT, "13812345678")).status_code == 201
        desk = system.client("agent", [SITE], sub=SUB_OF_ROLE["agent"])
        description = unique("water heater sparks")
        body, key, answers = repair_payload(UNIT, description), f"k-{uuid.uuid4().hex}", []

        with ticketing_held(system):
            first = threading.Thread(target=lambda: answers.append(desk.post("/tickets", body, key=key)))
            first.start()
            time.sleep(1.0)          # ticketing has taken the request and waits on its write
            broker_link.cut()
        # ticketing now makes the ticket and tries to answer while the broker is away
        first.join(30)
        assert answers[0].status_code == 503
        ready = requests.get(system.url + "/ready", timeout=10)
        assert ready.status_code == 503 and "broker" in ready.json()["down"]
        time.sleep(OUTAGE_SECONDS)
        assert [s for s in SERVICES if not system.running(s)] == [], system.log_tails()

        broker_link.restore()
        system.wait_ready(90)
        retried = eventually(lambda: desk.post("/tickets", body, key=key),
                             done=lambda response: response.status_code == 201, what="a 201")
        listed = head_office.get("/tickets", site=SITE, limit=200).json()["items"]
        assert [t["id"] for t in listed if t["description"] == description] == [retried.json()["id"]]

        # events flow again: a repair taken to completion gets its callback task and SMS
        ticket_id = retried.json()["id"]
        for action, payload, role in REPAIR_TO_COMPLETION:
            step = system.client(role, [SITE], sub=SUB_OF_ROLE.get(role)).post(
                f"/tickets/{ticket_id}/{action}", payload)
            assert step.status_code == 200, f"{action}: {step.text}"
        supervisor = system.client("supervisor", [SITE])
        messages = eventually(
            lambda: supervisor.get("/messages", ticket_id=ticket_id).json()["items"],
            done=lambda items: len(items) >= 2, what="the callback messages")
        time.sleep(2)
        assert len(supervisor.get("/messages", ticket_id=ticket_id).json()["items"]) == len(messages)
        assert [s for s in SERVICES if not system.running(s)] == []
