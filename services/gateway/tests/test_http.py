"""The gateway over real HTTP, in a Nameko container on the real broker (a virtual host of the
test session's own), with a stand-in ticketing service where a flow needs one."""

from types import SimpleNamespace

import eventlet
import jwt
import pytest
import requests
from kombu import Connection, Queue
from nameko.containers import ServiceContainer
from nameko.rpc import get_rpc_exchange, rpc
from sqlalchemy import create_engine, text

from services.common import BACKEND_SERVICES
from services.common.auth import Caller
from services.common.errors import EXPECTED, IllegalTransition
from services.common.rpc import TimedReplyListener
from services.gateway.tests.support import SECRET, token

pytestmark = pytest.mark.integration

AGENT = token("li", "agent", ["001"])
MANAGER = token("wang", "manager", ["001"])     # who may register a site
REPAIR = {"kind": "repair", "site": "001", "channel": "phone", "description": "厨房水管漏水"}


def stored(gateway, key):
    engine = create_engine(gateway.db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT caller, status FROM idempotency_keys WHERE key = :key"),
                            {"key": key}).all()
    engine.dispose()
    return [tuple(r) for r in rows]


class FakeTicketing:
    """Answers like ticketing and records what reached it."""
    name = "ticketing"
    caller = Caller()
    calls = []
    TICKETS = {
        "t-001": {"id": "t-001", "site": "001", "reporter": {"person_id": "p1"}, "status": "received"},
        "t-002": {"id": "t-002", "site": "002", "reporter": {"person_id": "p2"}, "status": "received"},
    }

    @rpc
    def ping(self):
        return {"service": self.name, "ok": True}

    @rpc
    def create_ticket(self, payload):
        self.calls.append(("create_ticket", payload, self.caller.identity, self.caller.correlation_id))
        if payload["description"] == "slow":
            eventlet.sleep(1)
        return {"id": f"t-{len(self.calls)}", "site": payload["site"], "status": "received"}

    @rpc
    def list_tickets(self, filters, cursor, limit):
        self.calls.append(("list_tickets", filters, cursor, limit))
        return {"items": [], "next_cursor": None}

    @rpc(expected_exceptions=EXPECTED)
    def get_ticket(self, ticket_id):
        self.calls.append(("get_ticket", ticket_id))
        return self._visible(ticket_id)

    @rpc(expected_exceptions=EXPECTED)
    def act(self, ticket_id, action, payload):
        self.calls.append(("act", ticket_id, action, payload))
        ticket = self._visible(ticket_id)
        if action == "close":
            raise IllegalTransition.build("close", "received", ["dispatch", "cancel"])
        return {**ticket, "status": "dispatched"}

    def _visible(self, ticket_id):
        """As ticketing checks a ticket it loads, with the same helper."""
        identity = self.caller.identity
        found = self.TICKETS.get(ticket_id)
        identity.require_visible(
            found and SimpleNamespace(**found), f"ticket {ticket_id}", {"ticket_id": ticket_id},
            owned=lambda t: t.reporter["person_id"] == identity.person_id)
        return found


@pytest.fixture
def ticketing(gateway):
    FakeTicketing.calls = []
    container = ServiceContainer(FakeTicketing, {"AMQP_URI": gateway.config["AMQP_URI"]})
    container.start()
    yield FakeTicketing
    container.stop()
    # Gone for good, so that later tests meet a service that is not running at all.
    with Connection(gateway.config["AMQP_URI"]) as conn:
        Queue("rpc-ticketing")(conn.channel()).delete()


class FakeRegistry:
    """Tells the gateway which units a resident lives in: p1 in 0010101001."""
    name = "registry"

    @rpc
    def resident_units(self, person_id):
        return ["0010101001"] if person_id == "p1" else []


@pytest.fixture
def registry(gateway):
    container = ServiceContainer(FakeRegistry, {"AMQP_URI": gateway.config["AMQP_URI"]})
    container.start()
    yield FakeRegistry
    container.stop()
    with Connection(gateway.config["AMQP_URI"]) as conn:
        Queue("rpc-registry")(conn.channel()).delete()


# -- probes and documents ------------------------------------------------------------------

def test_health_is_ok_and_echoes_the_correlation_id(gateway):
    response = gateway.get("/health", headers={"X-Correlation-Id": "req-42"})
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["X-Correlation-Id"] == "req-42"


def test_ready_is_503_listing_every_service_that_is_down(gateway):
    response = gateway.get("/ready")
    body = response.json()
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert body["down"] == list(BACKEND_SERVICES)
    assert body["checks"]["broker"] == "ok"


def test_ready_names_only_the_services_still_down(gateway, ticketing):
    body = gateway.get("/ready").json()
    assert body["down"] == [s for s in BACKEND_SERVICES if s != "ticketing"]
    assert body["checks"]["ticketing"] == "ok"


def test_the_openapi_document_is_served(gateway):
    response = gateway.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.") and "/api/v1/tickets" in response.json()["paths"]


def test_metrics_count_answers_by_route_and_status(gateway):
    gateway.get("/health")
    assert 'propdesk_http_responses_total{route="health",status="200"}' in gateway.get("/metrics").text


# -- authentication -----------------------------------------------------------------------

def test_no_token_is_401(gateway):
    response = gateway.get("/api/v1/sites")
    assert response.status_code == 401
    assert response.json()["type"] == "https://propdesk.dev/problems/unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_with_a_bad_signature_is_401(gateway):
    forged = token("li", "ops_admin", ["*"], secret="not-the-gateways-secret-0123456789")
    assert gateway.get("/api/v1/sites", token=forged).status_code == 401


def test_a_tampered_token_is_401(gateway):
    header, _, signature = AGENT.split(".")
    claims = jwt.decode(AGENT, SECRET, algorithms=["HS256"])
    forged_claims = jwt.encode({**claims, "sites": ["*"]}, "x" * 32, algorithm="HS256").split(".")[1]
    assert gateway.get("/api/v1/sites", token=f"{header}.{forged_claims}.{signature}").status_code == 401


# -- errors ------------------------------------------------------------------------------

def test_a_bad_site_body_is_422_naming_each_field(gateway):
    response = gateway.post("/api/v1/sites", {"code": "12", "timezone": "Mars/Olympus"},
                            token=token("m", "manager", ["*"]))
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"code", "name"}


def test_malformed_json_is_400(gateway):
    response = gateway.post("/api/v1/sites", token=MANAGER, data=b'{"code": "001",',
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["type"].endswith("/malformed-request")


def test_an_oversized_body_is_413(gateway):
    response = gateway.post("/api/v1/sites", token=MANAGER, data=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413


def test_an_unknown_route_is_a_404_problem(gateway):
    response = gateway.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/problem+json"


def test_a_wrong_method_is_405_with_allow(gateway):
    response = requests.delete(gateway.url("/api/v1/tickets"), timeout=10)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert gateway.get("/api/v1/tickets/t-001/dispatch", token=AGENT).status_code == 405


def test_a_limit_above_200_is_422_naming_limit(gateway):
    response = gateway.get("/api/v1/tickets?limit=201", token=AGENT)
    assert response.status_code == 422 and list(response.json()["errors"]) == ["limit"]


def test_an_unknown_action_is_404_listing_the_actions(gateway):
    response = gateway.post("/api/v1/tickets/t-001/teleport", {}, token=AGENT)
    assert response.status_code == 404 and "dispatch" in response.json()["allowed_actions"]


def test_an_action_body_is_checked_before_any_call(gateway, ticketing):
    response = gateway.post("/api/v1/tickets/t-001/dispatch", {}, token=AGENT)
    assert response.status_code == 422 and list(response.json()["errors"]) == ["assignee"]
    assert ticketing.calls == []


def test_echo_is_for_ops_only(gateway):
    assert gateway.post("/api/v1/admin/echo", {"payload": 1}, token=AGENT).status_code == 403


# -- services down ------------------------------------------------------------------------

def test_a_service_that_is_not_running_is_503_and_nothing_is_kept_for_the_key(gateway):
    response = gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-503")
    assert response.status_code == 503
    assert response.json()["type"] == "https://propdesk.dev/problems/service-unavailable"
    assert response.json()["service"] == "ticketing"
    assert stored(gateway, "k-503") == []
    assert gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-503").status_code == 503


def test_a_service_whose_queue_nobody_reads_is_503_after_the_timeout_and_the_request_expires(gateway):
    """A stopped service leaves its queue behind: the call must neither hang nor run later."""
    queue = Queue("rpc-ticketing", exchange=get_rpc_exchange(gateway.config), routing_key="ticketing.*",
                  durable=True)
    with Connection(gateway.config["AMQP_URI"]) as conn:
        bound = queue(conn.channel())
        bound.declare()
        try:
            started = eventlet.hubs.get_hub().clock()
            response = gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-slow")
            waited = eventlet.hubs.get_hub().clock() - started
            assert response.status_code == 503 and "did not answer within 2 s" in response.json()["detail"]
            assert 1.5 < waited < 6
            assert _drained(bound), "the request should expire unread in the queue"
            assert stored(gateway, "k-slow") == []
            listener = next(e for e in gateway.container.extensions if isinstance(e, TimedReplyListener))
            assert listener._reply_events == {}
        finally:
            bound.delete()


def _drained(bound_queue, seconds=5):
    for _ in range(int(seconds / 0.25)):
        if bound_queue.queue_declare(passive=True).message_count == 0:
            return True
        eventlet.sleep(0.25)
    return False


# -- flows through a service --------------------------------------------------------------

def test_a_creation_is_201_and_carries_the_callers_identity_and_correlation_id(gateway, ticketing):
    response = gateway.post("/api/v1/tickets", REPAIR, token=AGENT, headers={"X-Correlation-Id": "flow-1"})
    assert response.status_code == 201 and response.json()["site"] == "001"
    _, payload, identity, correlation_id = ticketing.calls[0]
    assert payload == REPAIR  # forwarded as sent; ticketing loads it again
    assert (identity.sub, identity.role, identity.sites) == ("li", "agent", ("001",))
    assert correlation_id == "flow-1" and response.headers["X-Correlation-Id"] == "flow-1"


def test_the_same_key_and_body_replay_the_first_answer_without_a_second_call(gateway, ticketing):
    first = gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-1")
    again = gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-1")
    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert [c[0] for c in ticketing.calls] == ["create_ticket"]


def test_the_same_key_with_another_body_is_422(gateway, ticketing):
    gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-2")
    response = gateway.post("/api/v1/tickets", {**REPAIR, "description": "another"}, token=AGENT, key="k-2")
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["errors"]
    assert len(ticketing.calls) == 1


def test_keys_belong_to_their_caller(gateway, ticketing):
    gateway.post("/api/v1/tickets", REPAIR, token=AGENT, key="k-3")
    other = gateway.post("/api/v1/tickets", REPAIR, token=token("wang", "agent", ["001"]), key="k-3")
    assert other.status_code == 201 and "Idempotent-Replayed" not in other.headers
    assert len(ticketing.calls) == 2


def test_a_duplicate_while_the_first_is_in_flight_is_409(gateway, ticketing):
    slow = {**REPAIR, "description": "slow"}
    first = eventlet.spawn(gateway.post, "/api/v1/tickets", slow, token=AGENT, key="k-4")
    eventlet.sleep(0.3)
    duplicate = gateway.post("/api/v1/tickets", slow, token=AGENT, key="k-4")
    assert duplicate.status_code == 409
    assert duplicate.json()["type"] == "https://propdesk.dev/problems/idempotency-in-flight"
    assert first.wait().status_code == 201
    assert len(ticketing.calls) == 1


def test_staff_cannot_open_a_ticket_at_another_site(gateway, ticketing):
    response = gateway.post("/api/v1/tickets", {**REPAIR, "site": "002"}, token=AGENT)
    assert response.status_code == 403 and response.json()["site"] == "002"
    assert ticketing.calls == []


def test_staff_get_403_for_another_sites_ticket(gateway, ticketing):
    assert gateway.get("/api/v1/tickets/t-001", token=AGENT).status_code == 200
    assert gateway.get("/api/v1/tickets/t-002", token=AGENT).status_code == 403


def test_a_resident_gets_404_for_someone_elses_ticket(gateway, ticketing, registry):
    resident = token("p1", "resident", ["001", "002"], person_id="p1")
    assert gateway.get("/api/v1/tickets/t-001", token=resident).status_code == 200
    assert gateway.get("/api/v1/tickets/t-002", token=resident).status_code == 404


def test_no_action_is_taken_on_another_sites_ticket(gateway, ticketing):
    response = gateway.post("/api/v1/tickets/t-002/dispatch", {"assignee": "tech-1"}, token=AGENT)
    assert response.status_code == 403
    # one call: the service refuses as it loads the ticket; the gateway fetches nothing first
    assert [c[0] for c in ticketing.calls] == ["act"]


def test_an_action_reaches_the_service_and_its_illegal_transition_is_409(gateway, ticketing):
    dispatched = gateway.post("/api/v1/tickets/t-001/dispatch", {"assignee": "tech-1"}, token=AGENT)
    assert dispatched.status_code == 200 and dispatched.json()["status"] == "dispatched"
    refused = gateway.post("/api/v1/tickets/t-001/close", {}, token=AGENT)
    assert refused.status_code == 409 and refused.json()["allowed_actions"] == ["dispatch", "cancel"]


def test_a_missing_ticket_is_404_from_the_service(gateway, ticketing):
    response = gateway.get("/api/v1/tickets/nope", token=AGENT)
    assert response.status_code == 404 and response.json()["ticket_id"] == "nope"


def test_ticket_filters_reach_the_service_loaded(gateway, ticketing):
    response = gateway.get("/api/v1/tickets?site=001&overdue=true&limit=10", token=AGENT)
    assert response.status_code == 200
    assert ticketing.calls == [("list_tickets", {"site": "001", "overdue": True}, None, 10)]


def test_a_method_the_running_service_lacks_is_503_not_a_hang(gateway, ticketing):
    response = gateway.get("/api/v1/messages?ticket_id=t-001", token=AGENT)
    assert response.status_code == 503  # no notifications service in this test
    response = gateway.post("/api/v1/admin/echo", {"service": "ticketing"}, token=token("o", "ops_admin", ["*"]))
    assert response.status_code == 503 and "does not offer echo" in response.json()["detail"]


def test_echo_round_trips_for_ops_through_a_service(gateway):
    ops = token("ops", "ops_admin", ["*"])
    response = gateway.post("/api/v1/admin/echo", {"service": "gateway", "payload": {"n": [1, "二"]}}, token=ops)
    assert response.status_code == 200, response.text
    assert response.json() == {"service": "gateway", "payload": {"n": [1, "二"]}}
    refused = gateway.post("/api/v1/admin/echo", {"service": "nobody", "payload": {"n": 1}}, token=ops)
    assert refused.status_code == 422 and list(refused.json()["errors"]) == ["service"]
