"""A repair from report to completion across registry, ticketing and notifications on the real
broker: completing it makes the callback task for the desk agent who took the call and the
satisfaction SMS to the owner, exactly once, also when notifications was down meanwhile or the
event arrives twice."""
import pytest
from nameko.standalone.events import event_dispatcher

from tests.flows import (
    AGENT, REPAIR_TO_COMPLETION, SITE, SUB_OF_ROLE, callback_messages, repair_payload,
    site_payload, unique, unit_payload,
)
from tests.inprocess import identity

pytestmark = pytest.mark.integration

UNIT, OWNER_PHONE = "0010101001", "13812345678"
SUPERVISOR = identity("supervisor", sub="sup-chen")


def as_role(role):
    return identity(role, sub=SUB_OF_ROLE[role])


@pytest.fixture
def repair_services(run_services):
    """registry, ticketing and notifications running; site 001 with one owner-occupied unit."""
    cluster = run_services("registry", "ticketing", "notifications")
    with cluster.rpc(identity("manager")) as rpc:
        rpc.registry.create_site(site_payload(SITE))
    with cluster.rpc(as_role("agent")) as rpc:
        rpc.registry.create_unit(unit_payload(UNIT, OWNER_PHONE))
    return cluster


def open_repair(cluster):
    with cluster.rpc(as_role("agent")) as rpc:
        return rpc.ticketing.create_ticket(repair_payload(UNIT, unique("kitchen tap leaking")))


def complete(cluster, ticket_id):
    for action, payload, role in REPAIR_TO_COMPLETION:
        with cluster.rpc(as_role(role)) as rpc:
            ticket = rpc.ticketing.act(ticket_id, action, payload)
    return ticket


def message_list(cluster):
    def list_messages(ticket_id):
        with cluster.rpc(SUPERVISOR) as rpc:
            return rpc.notifications.list_messages({"ticket_id": ticket_id})["items"]
    return list_messages


def assert_one_callback_task_and_one_sms(messages, ticket_id):
    assert [(m["recipient"], m["ticket_id"], m["unit"]) for m in messages["staff"]] == [
        (AGENT, ticket_id, UNIT)]
    assert [(m["recipient"], m["ticket_id"], m["unit"]) for m in messages["sms"]] == [
        (OWNER_PHONE, ticket_id, UNIT)]
    assert set(messages) == {"staff", "sms"}


def test_a_completed_repair_asks_the_desk_and_the_owner_for_a_callback(repair_services):
    ticket = open_repair(repair_services)
    assert ticket["first_contact_owner"] == AGENT
    assert ticket["reporter"]["phone"] == OWNER_PHONE

    completed = complete(repair_services, ticket["id"])
    assert completed["status"] == "completed"
    assert "callback" in completed["deadlines"]

    messages = callback_messages(message_list(repair_services), ticket["id"])
    assert_one_callback_task_and_one_sms(messages, ticket["id"])
    assert all(m["status"] == "sent" for m in messages["staff"] + messages["sms"])


def test_a_repair_completed_while_notifications_is_down_is_notified_once_it_is_back(repair_services):
    ticket = open_repair(repair_services)
    repair_services.stop("notifications")

    assert complete(repair_services, ticket["id"])["status"] == "completed"
    repair_services.start("notifications")

    assert_one_callback_task_and_one_sms(
        callback_messages(message_list(repair_services), ticket["id"]), ticket["id"])


def test_a_callback_event_delivered_twice_makes_its_messages_once(repair_services, event_tap):
    tap = event_tap("ticketing", "callback_due")
    ticket = open_repair(repair_services)
    complete(repair_services, ticket["id"])
    [(_, event)] = tap.collect(expected=1, quiet=0)
    callback_messages(message_list(repair_services), ticket["id"])

    # What a relay that crashed between publishing and marking the row would do: send it again.
    event_dispatcher(repair_services.config)("ticketing", "callback_due", event)

    assert_one_callback_task_and_one_sms(
        callback_messages(message_list(repair_services), ticket["id"]), ticket["id"])
