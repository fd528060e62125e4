"""The whole system as separate processes, driven through the HTTP gateway as clients use it:
the walk-through from a new site to the callback messages of a completed repair; who may see
what (401, 403, 404); bad input (422, nothing written); a stopped service (503, then back);
Idempotency-Key replays; and a service killed mid-flow losing and doubling nothing."""
import time

import pytest
import requests

from tests.flows import (
    AGENT, OTHER_SITE, REPAIR_TO_COMPLETION, SITE, SUB_OF_ROLE, TECHNICIAN, callback_messages,
    eventually, repair_payload, site_payload, unique, unit_payload,
)

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"
UNIT, NEIGHBOUR_UNIT, OTHER_SITE_UNIT = "0010101001", "0010101002", "0020101001"
OWNER_PHONE, NEIGHBOUR_PHONE = "13812345678", "13987654321"


@pytest.fixture(scope="module")
def people(system):
    """Sites 001 and 002, owner-occupied units in them; {unit: owner's person id}."""
    head_office = system.client("hq", ["*"], sub="hq-zhao")
    for code in (SITE, OTHER_SITE):
        assert head_office.post("/sites", site_payload(code)).status_code == 201
    owners = {}
    for unit, phone in ((UNIT, OWNER_PHONE), (NEIGHBOUR_UNIT, NEIGHBOUR_PHONE),
                        (OTHER_SITE_UNIT, "13700000000")):
        created = head_office.post("/units", unit_payload(unit, phone))
        assert created.status_code == 201, created.text
        owners[unit] = created.json()["people"][0]["id"]
    return owners


@pytest.fixture(autouse=True)
def all_services_running(system):
    """A test that stops or kills a service leaves the system whole for the next one."""
    yield
    system.revive()


def staff(system, role, site=SITE):
    return system.client(role, [site], sub=SUB_OF_ROLE.get(role, f"{role}-{site}"))


def head_office(system):
    return system.client("hq", ["*"], sub="hq-zhao")


def resident(system, people, unit):
    return system.client("resident", [unit[:3]], sub=f"resident-{unit}", person_id=people[unit])


def open_repair(system, unit=UNIT, description=None):
    response = staff(system, "agent", unit[:3]).post(
        "/tickets", repair_payload(unit, description or unique("kitchen tap leaking")))
    assert response.status_code == 201, response.text
    return response.json()


def take_to_completion(system, ticket_id):
    for action, payload, role in REPAIR_TO_COMPLETION:
        response = staff(system, role).post(f"/tickets/{ticket_id}/{action}", payload)
        assert response.status_code == 200, f"{action}: {response.text}"
    return response.json()


def message_list(system):
    supervisor = staff(system, "supervisor")
    return lambda ticket_id: supervisor.get("/messages", ticket_id=ticket_id).json()["items"]


def tickets_described(system, description, site=SITE):
    return [t for t in all_tickets(system, site) if t["description"] == description]


def all_tickets(system, site=None, max_pages=50):
    """Every ticket head office sees (on `site`), page by page."""
    head, query, tickets = head_office(system), {"limit": 200}, []
    if site:
        query["site"] = site
    for _ in range(max_pages):
        listed = head.get("/tickets", **query)
        assert listed.status_code == 200, listed.text
        tickets += listed.json()["items"]
        if not listed.json()["next_cursor"]:
            return tickets
        query["cursor"] = listed.json()["next_cursor"]
    raise AssertionError(f"more than {max_pages} pages of tickets")


def assert_problem(response, status, type_suffix):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].endswith(type_suffix)
    return problem


def assert_one_callback_task_and_one_sms(messages, owner_phone=OWNER_PHONE):
    assert [m["recipient"] for m in messages["staff"]] == [AGENT]
    assert [m["recipient"] for m in messages["sms"]] == [owner_phone]
    assert set(messages) == {"staff", "sms"}


def test_walkthrough_from_a_new_site_to_a_closed_repair(system):
    """The README's walk-through, on a site of its own."""
    site, unit, owner_phone = "003", "0031020304", "13812341234"
    ops = system.client("ops_admin", ["*"], sub="ops")
    desk = system.client("agent", [site], sub=AGENT)
    technician = system.client("technician", [site], sub=TECHNICIAN)
    assert ops.post("/sites", site_payload(site)).status_code == 201
    registered = desk.post("/units", unit_payload(unit, owner_phone, owner="张三", area="88.50"))
    assert registered.status_code == 201, registered.text
    assert registered.json()["people"][0]["phone"] == "138****1234"

    created = desk.post("/tickets", repair_payload(unit, "厨房水管漏水"))
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert (ticket["status"], ticket["first_contact_owner"]) == ("received", AGENT)
    steps = [(desk, "dispatch", {"assignee": TECHNICIAN}, "dispatched"),
             (technician, "arrive", {}, "on_site"),
             (technician, "complete", {"result": "换了阀门", "signed_off": True}, "completed")]
    for caller, action, payload, status in steps:
        answered = caller.post(f"/tickets/{ticket['id']}/{action}", payload)
        assert answered.status_code == 200, answered.text
        assert answered.json()["status"] == status

    messages = callback_messages(
        lambda ticket_id: desk.get("/messages", ticket_id=ticket_id).json()["items"], ticket["id"])
    assert_one_callback_task_and_one_sms(messages, owner_phone=owner_phone)

    too_early = assert_problem(desk.post(f"/tickets/{ticket['id']}/close", {}), 409, "illegal-transition")
    assert too_early["allowed_actions"] == ["record-callback"]
    called_back = desk.post(f"/tickets/{ticket['id']}/record-callback", {"reached": True, "satisfaction": 5})
    assert called_back.status_code == 200, called_back.text
    assert desk.post(f"/tickets/{ticket['id']}/close", {}).json()["status"] == "closed"

    shown = desk.get(f"/tickets/{ticket['id']}").json()
    assert [step["action"] for step in shown["history"]][-5:] == [
        "dispatch", "arrive", "complete", "record-callback", "close"]
    assert (shown["callback"]["satisfaction"], shown["callback"]["by"]) == (5, AGENT)


def window(day):
    return {"start": f"2026-11-{day}T09:00:00+08:00", "end": f"2026-11-{day}T11:00:00+08:00"}


def test_an_appointment_at_dispatch_and_two_missed_ones_escalate_the_repair_once(system, people):
    """Appointments carry instants, which the ticket and its history keep as JSON (issue 17)."""
    desk = staff(system, "agent")
    tid = open_repair(system)["id"]
    dispatched = desk.post(f"/tickets/{tid}/dispatch",
                           {"assignee": TECHNICIAN, "appointment": window(24)})
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["appointment"] == window(24)
    for day in (25, 26):
        moved = desk.post(f"/tickets/{tid}/reschedule",
                          {"appointment": window(day), "missed": True, "reason": "技工未到"})
        assert moved.status_code == 200, moved.text

    shown = desk.get(f"/tickets/{tid}").json()
    assert (shown["reschedules"], shown["missed_appointments"]) == (2, 2)
    assert shown["escalated"] and shown["appointment"] == window(26)
    history = shown["history"]
    assert [step["action"] for step in history].count("escalate") == 1
    rescheduled = [step for step in history if step["action"] == "reschedule"]
    assert [(step["note"], step["data"]) for step in rescheduled] == [
        ("技工未到", {"appointment": window(day), "missed": True}) for day in (25, 26)]


def test_a_call_without_a_valid_token_is_401(system, people):
    anonymous = system.client()
    assert_problem(anonymous.get("/tickets", site=SITE), 401, "unauthorized")
    refused = anonymous.post("/tickets", repair_payload(UNIT, unique("no token")))
    assert_problem(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")

    forged = requests.get(system.url + "/api/v1/tickets", timeout=10, headers={
        "Authorization": "Bearer " + forged_token()})
    assert_problem(forged, 401, "unauthorized")


def forged_token():
    from services.gateway.tokens import mint
    return mint("mallory", "hq", ["*"], secret="not-the-secret-of-this-system-at-all")


def test_staff_of_another_site_are_refused_with_403_and_nothing_is_written(system, people):
    other_desk = staff(system, "agent", OTHER_SITE)
    before = all_tickets(system)
    assert_problem(staff(system, "agent").post(
        "/tickets", repair_payload(OTHER_SITE_UNIT, unique("opened from the wrong site"))),
        403, "forbidden")
    assert all_tickets(system) == before

    theirs = open_repair(system, OTHER_SITE_UNIT)
    assert other_desk.get(f"/tickets/{theirs['id']}").status_code == 200
    assert_problem(staff(system, "agent").get(f"/tickets/{theirs['id']}"), 403, "forbidden")
    assert_problem(staff(system, "agent").post(f"/tickets/{theirs['id']}/dispatch",
                                               {"assignee": TECHNICIAN}), 403, "forbidden")
    assert other_desk.get(f"/tickets/{theirs['id']}").json()["status"] == "received"


def test_a_resident_gets_404_for_another_residents_ticket(system, people):
    owner, neighbour = resident(system, people, UNIT), resident(system, people, NEIGHBOUR_UNIT)
    reported = owner.post("/tickets", {**repair_payload(UNIT, unique("bathroom fan broken")),
                                       "channel": "app"})
    assert reported.status_code == 201, reported.text
    ticket_id = reported.json()["id"]

    assert owner.get(f"/tickets/{ticket_id}").status_code == 200
    assert_problem(neighbour.get(f"/tickets/{ticket_id}"), 404, "not-found")
    assert ticket_id not in [t["id"] for t in neighbour.get("/tickets").json()["items"]]


@pytest.mark.parametrize("fields, change", [
    (["channel", "description", "unit"], {"unit": "12", "channel": "fax", "description": ""}),
    (["unit"], {"unit": "0010199999"}),     # well-formed, but registry knows no such unit
    (["unit"], {"unit": OTHER_SITE_UNIT}),  # a unit of another site than the ticket's
])
def test_bad_input_is_422_naming_the_fields_and_nothing_is_written(system, people, fields, change):
    before = all_tickets(system)
    body = {**repair_payload(UNIT, unique("bad input")), **change}
    refused = staff(system, "agent").post("/tickets", body)

    problem = assert_problem(refused, 422, "validation")
    assert sorted(problem["errors"]) == fields
    assert all_tickets(system) == before


def test_with_registry_down_a_desk_still_opens_a_repair_for_the_unit_and_its_owner(system, people):
    """Ticketing keeps its own copy of units and owners (SPEC §6): opening a ticket does not
    wait on registry."""
    system.stop("registry")
    opened = eventually(lambda: staff(system, "agent").post(
        "/tickets", repair_payload(UNIT, unique("registry down"))),
        done=lambda r: r.status_code == 201, what="a repair opened from ticketing's copy")
    assert opened.json()["reporter"]["phone"] == OWNER_PHONE
    assert opened.json()["code"].startswith("001-R-")


def test_a_stopped_service_is_503_and_serves_again_once_restarted(system, people):
    system.stop("ticketing")
    description = unique("while ticketing is down")
    started = time.monotonic()
    refused = staff(system, "agent").post("/tickets", repair_payload(UNIT, description))
    problem = assert_problem(refused, 503, "service-unavailable")
    assert problem["service"] == "ticketing"
    assert time.monotonic() - started < 10, "the gateway must answer within its RPC timeout"
    assert "ticketing" in requests.get(system.url + "/ready", timeout=10).json()["down"]

    system.start_service("ticketing")
    system.wait_ready()
    assert open_repair(system)["status"] == "received"
    # The refused request expired unread: it was not carried out behind the client's back.
    assert tickets_described(system, description) == []


def test_an_idempotency_key_replays_the_first_answer(system, people):
    desk = staff(system, "agent")
    description = unique("door lock jammed")
    body, key = repair_payload(UNIT, description), unique("key").replace(" ", "-")

    first, again = desk.post("/tickets", body, key=key), desk.post("/tickets", body, key=key)

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(tickets_described(system, description)) == 1
    reused = desk.post("/tickets", repair_payload(UNIT, unique("another request")), key=key)
    assert "Idempotency-Key" in assert_problem(reused, 422, "validation")["errors"]


def test_notifications_killed_mid_flow_sends_the_callback_messages_once_back(system, people):
    ticket = open_repair(system)
    system.kill("notifications")

    take_to_completion(system, ticket["id"])
    system.start_service("notifications")
    system.wait_ready()

    assert_one_callback_task_and_one_sms(callback_messages(message_list(system), ticket["id"]))


def test_ticketing_killed_right_after_completing_a_repair_loses_no_message(system, people):
    ticket = open_repair(system)

    take_to_completion(system, ticket["id"])
    system.kill("ticketing")
    system.start_service("ticketing")
    system.wait_ready()

    assert_one_callback_task_and_one_sms(callback_messages(message_list(system), ticket["id"]))
    assert head_office(system).get(f"/tickets/{ticket['id']}").json()["status"] == "completed"


def test_every_process_serves_its_metrics(system, people):
    open_repair(system)
    for service, port in system.ports.items():
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert metrics.status_code == 200, service
        assert f'service="{service}"' in metrics.text
