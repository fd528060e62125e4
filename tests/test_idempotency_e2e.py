"""A client retrying with its Idempotency-Key gets one effect and the first answer, also when
the gateway gave up on the first request (503) while ticketing went on to carry it out, and
when ticketing was killed with SIGKILL in the middle of it.

Ticketing is held in the middle of a request by a write lock the test takes on its SQLite
database: the worker has taken the RPC and blocks on its first write, as a slow disk or a long
lock would make it, until the test lets go."""
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager

import pytest

from tests.flows import SITE, eventually, repair_payload, unique
from tests.test_e2e_gateway import (  # noqa: F401 — `people` is a fixture used here
    UNIT, assert_problem, head_office, open_repair, people, staff, tickets_described,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def all_services_running(system):
    yield
    system.revive()


@contextmanager
def ticketing_held(system):
    """Ticketing's writes wait while the block runs (BEGIN IMMEDIATE on its database)."""
    path = system.db_urls["ticketing"].split("///", 1)[1]
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def new_key():
    return f"retry-{uuid.uuid4().hex}"


def test_a_repair_ticketing_finished_after_the_gateways_503_is_replayed_not_made_again(system, people):
    desk = staff(system, "agent")
    description = unique("boiler pressure low")
    body, key = repair_payload(UNIT, description), new_key()

    with ticketing_held(system):
        first = desk.post("/tickets", body, key=key)
        assert_problem(first, 503, "service-unavailable")
        # the client retries at once; ticketing has both requests and is still busy
        assert_problem(desk.post("/tickets", body, key=key), 503, "service-unavailable")

    [made] = eventually(lambda: tickets_described(system, description), what="the ticket made")
    retried = desk.post("/tickets", body, key=key)

    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == made["id"]
    assert len(tickets_described(system, description)) == 1
    again = desk.post("/tickets", body, key=key)
    assert again.json() == retried.json() and again.headers.get("Idempotent-Replayed") == "true"


def test_a_retried_arrive_that_ran_after_a_503_answers_200_not_409(system, people):
    ticket = open_repair(system)
    assert staff(system, "agent").post(f"/tickets/{ticket['id']}/dispatch",
                                       {"assignee": "tech1"}).status_code == 200
    technician, key = staff(system, "technician"), new_key()

    with ticketing_held(system):
        assert_problem(technician.post(f"/tickets/{ticket['id']}/arrive", {}, key=key),
                       503, "service-unavailable")
    eventually(lambda: head_office(system).get(f"/tickets/{ticket['id']}").json()["status"],
               done=lambda status: status == "on_site", what="the arrival recorded")
    retried = technician.post(f"/tickets/{ticket['id']}/arrive", {}, key=key)

    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "on_site"
    assert [h["action"] for h in retried.json()["history"]].count("arrive") == 1
    # a new request (a new key) is judged on the state: arriving twice is a 409
    assert_problem(technician.post(f"/tickets/{ticket['id']}/arrive", {}, key=new_key()),
                   409, "illegal-transition")


def test_ticketing_killed_with_sigkill_mid_request_and_retried_makes_one_ticket(system, people):
    desk = staff(system, "agent")
    description = unique("ceiling leak after storm")
    body, key = repair_payload(UNIT, description), new_key()
    answers = []

    with ticketing_held(system):
        first = threading.Thread(target=lambda: answers.append(desk.post("/tickets", body, key=key)))
        first.start()
        time.sleep(1.0)   # well within the 3 s deadline: ticketing has taken the request
        system.kill("ticketing")
    first.join(30)
    assert_problem(answers[0], 503, "service-unavailable")

    system.start_service("ticketing")
    system.wait_ready()
    retried = eventually(lambda: desk.post("/tickets", body, key=key),
                         done=lambda response: response.status_code == 201, what="a 201")
    again = desk.post("/tickets", body, key=key)

    [made] = tickets_described(system, description)
    assert retried.json()["id"] == again.json()["id"] == made["id"]

