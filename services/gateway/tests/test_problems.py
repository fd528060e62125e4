"""What a client sees when something is wrong: RFC 9457 problems with stable types, the fields
at fault, and nothing of the gateway's insides; and the per-object scope rules."""
import json
from types import SimpleNamespace

import pytest
from nameko.exceptions import RemoteError, deserialize, serialize
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict

from services.common.auth import Identity
from services.common.errors import (
    Forbidden, IllegalTransition, NotFound, ProblemError, Unauthorized, ValidationFailed,
)
from services.gateway import access
from services.gateway.queries import TicketQuery, UnitQuery
from services.gateway.web import (
    MalformedRequest, MethodNotAllowed, ServiceUnavailable, as_problem, load_query, parse_json,
    problem_response, validate,
)
from services.registry.schemas import SiteIn, UnitIn
from services.ticketing.schemas import ACTION_SCHEMAS

AGENT_001 = Identity(sub="li", role="agent", sites=("001",))
RESIDENT = Identity(sub="p1", role="resident", sites=("001",), person_id="p1")


def document(response):
    assert response.content_type == "application/problem+json"
    return json.loads(response.get_data())


def test_a_problem_has_the_rfc_9457_members_and_the_correlation_id():
    body = document(problem_response(NotFound("no ticket t1", {"ticket_id": "t1"}), "/api/v1/tickets/t1", "c-1"))
    assert body == {"type": "https://propdesk.dev/problems/not-found", "title": "Not found",
                    "status": 404, "detail": "no ticket t1", "instance": "/api/v1/tickets/t1",
                    "correlation_id": "c-1", "ticket_id": "t1"}


def test_extra_members_cannot_overwrite_the_standard_ones():
    body = document(problem_response(Forbidden("no", {"status": 200, "type": "x"}), "/p", "c"))
    assert body["status"] == 403 and body["type"].endswith("/forbidden")


def test_an_illegal_transition_from_a_service_keeps_its_type_and_allowed_actions_over_rpc():
    sent = IllegalTransition.build("close", "received", ["dispatch", "cancel"])
    received = deserialize(serialize(sent))  # what the gateway gets back from nameko
    response = problem_response(as_problem(received), "/api/v1/tickets/t1/close", "c")
    body = document(response)
    assert response.status_code == 409
    assert body["type"] == "https://propdesk.dev/problems/illegal-transition"
    assert body["allowed_actions"] == ["dispatch", "cancel"]


def test_a_services_validation_failure_names_its_fields_over_rpc():
    received = deserialize(serialize(ValidationFailed.from_messages({"unit": ["no unit 0019999999"]})))
    body = document(problem_response(as_problem(received), "/api/v1/tickets", "c"))
    assert body["status"] == 422 and body["errors"] == {"unit": ["no unit 0019999999"]}


@pytest.mark.parametrize("exc", [RuntimeError("password=hunter2 at db.py:12"),
                                 RemoteError("KeyError", "'secret internals'")])
def test_an_unexpected_error_is_a_500_without_its_insides(exc):
    response = problem_response(as_problem(exc), "/api/v1/sites", "c-9")
    body = document(response)
    assert response.status_code == 500 and body["type"].endswith("/internal")
    assert "hunter2" not in json.dumps(body) and "secret internals" not in json.dumps(body)
    assert "c-9" in body["detail"] or body["correlation_id"] == "c-9"


def test_the_gateways_own_database_down_is_a_503_to_retry():
    problem = as_problem(OperationalError("INSERT ...", {}, Exception("disk I/O error")))
    assert problem.status == 503 and problem.extra == {"service": "gateway-db"}


@pytest.mark.parametrize("problem, header, value", [
    (Unauthorized("send a token"), "WWW-Authenticate", 'Bearer realm="propdesk"'),
    (MethodNotAllowed("no", {"allowed_methods": ["GET", "POST"]}), "Allow", "GET, POST"),
    (ServiceUnavailable("ticketing is not running", {"service": "ticketing"}), "Retry-After", "1"),
])
def test_problems_carry_the_headers_http_asks_for(problem, header, value):
    assert problem_response(problem, "/p", "c").headers[header] == value


def test_every_gateway_problem_is_a_problem_error_with_a_stable_type():
    for cls in (MalformedRequest, MethodNotAllowed, ServiceUnavailable):
        assert issubclass(cls, ProblemError) and cls.type.startswith("https://propdesk.dev/problems/")


def test_a_body_is_checked_with_the_services_schema_naming_every_bad_field():
    with pytest.raises(ValidationFailed) as caught:
        validate(UnitIn, {"code": "00210203", "site": "1", "usage": "castle", "area_m2": "-1"})
    assert set(caught.value.extra["errors"]) == {"code", "site", "usage", "area_m2", "owner"}


def test_a_valid_body_passes_as_it_is():
    assert validate(SiteIn, {"code": "001", "name": "Riverside"}) is None


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        validate(ACTION_SCHEMAS["dispatch"], ["x"])
    assert "_schema" in caught.value.extra["errors"]


@pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b"\xff\xfe"])
def test_malformed_json_is_a_400(raw):
    with pytest.raises(MalformedRequest):
        parse_json(raw, "application/json")


def test_an_empty_body_is_an_empty_object():
    assert parse_json(b"  ", None) == {}


@pytest.mark.parametrize("limit", ["0", "201", "ten"])
def test_a_page_limit_outside_1_to_200_names_limit(limit):
    with pytest.raises(ValidationFailed) as caught:
        load_query(TicketQuery, MultiDict({"limit": limit}))
    assert list(caught.value.extra["errors"]) == ["limit"]


def test_ticket_filters_are_loaded_for_rpc():
    query = load_query(TicketQuery, MultiDict({
        "site": "001", "overdue": "true", "callback_due_before": "2026-11-23T09:00:00 08:00", "limit": "20"}))
    assert query == {"site": "001", "kind": None, "status": None, "overdue": True,
                     "callback_due_before": "2026-11-23T09:00:00+08:00", "cursor": None, "limit": 20}


def test_an_unknown_query_parameter_is_named_not_ignored():
    with pytest.raises(ValidationFailed) as caught:
        load_query(UnitQuery, MultiDict({"site": "001", "stie": "002"}))
    assert list(caught.value.extra["errors"]) == ["stie"]


def test_a_naive_instant_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        load_query(TicketQuery, MultiDict({"callback_due_before": "2026-11-23T09:00:00"}))
    assert "callback_due_before" in caught.value.extra["errors"]


# -- scope ------------------------------------------------------------------------------

def ticket(site="001", person_id="p1"):
    return SimpleNamespace(id="t1", site=site, reporter={"name": "张三", "person_id": person_id})


def require_ticket(identity, found):
    """As ticketing loads a ticket (the gateway forwards without fetching it first)."""
    return identity.require_visible(found, f"ticket {found.id}", {"ticket_id": found.id},
                                    owned=lambda t: t.reporter["person_id"] == identity.person_id)


def test_staff_get_403_for_a_ticket_of_another_site():
    with pytest.raises(Forbidden):
        require_ticket(AGENT_001, ticket(site="002"))


def test_staff_see_any_ticket_of_their_site():
    require_ticket(AGENT_001, ticket(person_id="someone-else"))


def test_a_resident_gets_404_for_someone_elses_ticket():
    with pytest.raises(NotFound):
        require_ticket(RESIDENT, ticket(person_id="p2"))


def test_a_resident_sees_their_own_ticket():
    require_ticket(RESIDENT, ticket())


def test_an_object_elsewhere_looks_like_none_where_the_service_conceals_it():
    unit = SimpleNamespace(site="002")
    with pytest.raises(NotFound):
        AGENT_001.require_visible(unit, "unit 0021020304", {"unit": "0021020304"}, conceal=True)
    with pytest.raises(NotFound):
        AGENT_001.require_visible(None, "unit 0011020304", {"unit": "0011020304"})


def test_a_unit_of_another_site_is_403_to_staff_and_404_to_a_resident():
    with pytest.raises(Forbidden):
        access.require_unit(AGENT_001, "0021020304")
    with pytest.raises(NotFound):
        access.require_unit(RESIDENT, "0021020304")
    access.require_unit(AGENT_001, "0011020304")


def test_a_resident_reads_only_their_own_person_record():
    with pytest.raises(NotFound):
        access.require_person(RESIDENT, "p2")
    access.require_person(RESIDENT, "p1")
    access.require_person(AGENT_001, "p2")  # registry checks staff by site and role


# -- the body parser's limits (SPEC §7), for every route ---------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None,
                                          "application/problem+json"])
def test_a_body_that_is_not_sent_as_json_is_a_415(content_type):
    with pytest.raises(ProblemError) as caught:
        parse_json(b'{"kind": "repair"}', content_type)
    assert caught.value.status == 415 and "body" in caught.value.extra["errors"]


def test_nesting_of_32_levels_is_parsed_and_of_33_or_10000_is_a_400_without_recursing():
    assert parse_json(b"[" * 32 + b"]" * 32, "application/json") == json.loads("[" * 32 + "]" * 32)
    for depth in (33, 10_000, 1_000_000):
        with pytest.raises(MalformedRequest) as caught:
            parse_json(b'{"a": ' + b"[" * depth + b"]" * depth + b"}", "application/json")
        assert caught.value.extra["errors"] == {"body": ["nested deeper than 32 levels"]}


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"note": "[" * 100 + '\\"{' * 100})
    assert parse_json(text.encode(), "application/json")["note"].startswith("[[[")


@pytest.mark.parametrize("raw, field", [
    (rb'{"description": "leak \ud800"}', "description"),
    (rb'{"reporter": {"name": "\udfff"}}', "reporter.name"),
    (rb'{"items": [{"description": "ok"}, {"description": "\udc00"}]}', "items.1.description"),
    (rb'{"context": {"\ud800": 1}}', "context"),
    (rb'"\ud800"', "body"),
])
def test_a_lone_surrogate_anywhere_is_a_422_naming_where(raw, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_json(raw, "application/json")
    assert list(caught.value.extra["errors"]) == [field]
    assert problem_response(caught.value, "/p", "c").status_code == 422  # and it can be answered


def test_a_surrogate_pair_is_text():
    assert parse_json(rb'{"d": "\ud83d\ude00"}', "application/json") == {"d": "\U0001F600"}


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(constant):
    with pytest.raises(MalformedRequest):
        parse_json(b'{"amount": ' + constant + b"}", "application/json")


def test_the_problem_schema_declares_every_extension_member_the_code_raises():
    """Every key a ProblemError's `extra` gets in services/ (a dict literal given to a problem,
    to `require_visible` as its ref, or as an InvalidField keyword) is a declared member of the
    documented Problem, which allows no others: a new one must be declared to be documented."""
    import ast
    import pathlib

    from services.common import errors
    from services.gateway import web
    problems = {name for name, value in {**vars(errors), **vars(web)}.items()
                if isinstance(value, type) and issubclass(value, ProblemError)} | {"cls"}
    raised = {}
    for path in pathlib.Path(web.__file__).parents[1].rglob("*.py"):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            given = []
            if name in problems or (isinstance(node.func, ast.Attribute)
                                    and getattr(node.func.value, "id", None) in problems):
                given = node.args[1:2] + [k.value for k in node.keywords if k.arg == "extra"]
            elif name == "require_visible":
                given = node.args[2:3]
            elif name == "InvalidField":
                raised.update({k.arg: f"{path.name}:{node.lineno}" for k in node.keywords if k.arg})
            for extra in given:
                if isinstance(extra, ast.Dict):
                    raised.update({k.value: f"{path.name}:{node.lineno}" for k in extra.keys
                                   if isinstance(k, ast.Constant)})
    declared = set(web.Problem().fields)
    assert {key: where for key, where in raised.items() if key not in declared} == {}
    assert web.Problem().unknown == "raise"
