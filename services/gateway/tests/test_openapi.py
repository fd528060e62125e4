"""The OpenAPI 3 document: every route is in it, with the services' own schemas."""
import re

import pytest

from services.billing.schemas import LAWSUIT_ACTIONS
from services.gateway.openapi import build
from services.gateway.routing import routes_of
from services.gateway.service import GatewayService
from services.ticketing.schemas import ACTION_SCHEMAS
from services.renovation.schemas import ACTION_SCHEMAS as RENOVATION_ACTIONS

ROUTES = [r for r in routes_of(GatewayService) if r.documented]
DOCUMENT = build(ROUTES)

EXPECTED = {
    ("post", "/api/v1/sites"), ("get", "/api/v1/sites"), ("get", "/api/v1/sites/{code}"),
    ("post", "/api/v1/units"), ("get", "/api/v1/units"), ("get", "/api/v1/units/{code}"),
    ("get", "/api/v1/persons/{person_id}"),
    ("post", "/api/v1/tickets"), ("get", "/api/v1/tickets"), ("get", "/api/v1/tickets/{ticket_id}"),
    *{("post", f"/api/v1/tickets/{{ticket_id}}/{action}") for action in ACTION_SCHEMAS},
    ("get", "/api/v1/messages"), ("post", "/api/v1/admin/echo"), ("get", "/api/v1/openapi.json"),
    ("get", "/health"), ("get", "/ready"), ("get", "/metrics"),
}
EXPECTED |= {  # billing (issue 5)
    ("post", "/api/v1/fee-schedules"), ("post", "/api/v1/billing/runs"),
    ("post", "/api/v1/invoices"), ("post", "/api/v1/payments"),
    ("get", "/api/v1/units/{code}/account"), ("get", "/api/v1/arrears"),
    ("get", "/api/v1/billing/collection"), ("post", "/api/v1/admin/sweeps/billing"),
}

EXPECTED |= {  # ticketing (issue 3): SLA policies, the sweep, front-desk views
    ("get", "/api/v1/sites/{code}/sla-policy"), ("post", "/api/v1/sites/{code}/sla-policy"),
    ("post", "/api/v1/admin/sweeps/ticketing"), ("get", "/api/v1/sites/{code}/handover"),
    ("get", "/api/v1/sites/{code}/callbacks"), ("get", "/api/v1/sites/{code}/kpis"),
}

EXPECTED |= {  # ticketing (issue 17): the on-call roster
    ("put", "/api/v1/sites/{code}/on-call"), ("get", "/api/v1/sites/{code}/on-call"),
}

EXPECTED |= {  # registry: move-in (入伙) and the customer-affairs assistant
    ("post", "/api/v1/units/{code}/move-in"), ("post", "/api/v1/units/{code}/assistant"),
}

EXPECTED |= {  # registry (issue 12): people, vehicles, change requests, history, KPIs, sweep
    ("post", "/api/v1/units/{code}/people"), ("get", "/api/v1/units/{code}/people"),
    ("post", "/api/v1/persons/{person_id}/verify"),
    ("post", "/api/v1/units/{code}/vehicles"), ("get", "/api/v1/units/{code}/vehicles"),
    ("post", "/api/v1/change-requests"), ("get", "/api/v1/change-requests"),
    ("get", "/api/v1/change-requests/{request_id}"),
    ("post", "/api/v1/change-requests/{request_id}/approve"),
    ("post", "/api/v1/change-requests/{request_id}/reject"),
    ("get", "/api/v1/units/{code}/history"), ("get", "/api/v1/sites/{code}/registry-kpis"),
    ("post", "/api/v1/admin/sweeps/registry"),
}
EXPECTED |= {  # notifications (issue 6): a message's attempts, letters, opt-outs, templates
    ("get", "/api/v1/messages/{message_id}"), ("post", "/api/v1/messages/{message_id}/retry"),
    ("get", "/api/v1/messages/{message_id}/document"),
    ("post", "/api/v1/messages/{message_id}/posted"),
    ("post", "/api/v1/persons/{person_id}/opt-outs"), ("get", "/api/v1/templates"),
    ("post", "/api/v1/templates/{name}/{channel}/preview"),
    ("post", "/api/v1/admin/sweeps/notifications"),
}

EXPECTED |= {
    ("post", "/api/v1/renovations"), ("get", "/api/v1/renovations"),
    ("get", "/api/v1/renovations/{renovation_id}"), ("get", "/api/v1/passes/{number}"),
    ("post", "/api/v1/admin/sweeps/renovation"),
    *{("post", f"/api/v1/renovations/{{renovation_id}}/{action}") for action in RENOVATION_ACTIONS},
}
EXPECTED |= {("put", "/api/v1/calendar/{year}"), ("get", "/api/v1/calendar/{year}")}

EXPECTED |= {  # frontdesk (issue 13)
    ("post", "/api/v1/move-ins"), ("get", "/api/v1/move-ins/{move_in_id}"),
    *{("post", f"/api/v1/move-ins/{{move_in_id}}/{a}") for a in ("start", "documents", "inspection", "complete")},
    ("get", "/api/v1/defects"), ("get", "/api/v1/defects/{defect_id}"),
    *{("post", f"/api/v1/defects/{{defect_id}}/{a}") for a in ("submit", "progress", "fixed", "close")},
    ("post", "/api/v1/parking-spaces"), ("post", "/api/v1/parking-rentals"),
    ("get", "/api/v1/parking-rentals/{rental_id}"),
    *{("post", f"/api/v1/parking-rentals/{{rental_id}}/{a}") for a in ("approve", "reject", "end")},
    ("post", "/api/v1/release-passes"), ("get", "/api/v1/release-passes/{pass_id}"),
    ("get", "/api/v1/release-passes/{number}/check"), ("post", "/api/v1/release-passes/{number}/use"),
    *{("post", f"/api/v1/release-passes/{{pass_id}}/{a}") for a in ("confirm", "refuse")},
    ("post", "/api/v1/activities"), ("get", "/api/v1/activities/{activity_id}"),
    *{("post", f"/api/v1/activities/{{activity_id}}/{a}")
      for a in ("publish", "register", "complete", "revisit", "cancel")},
    ("get", "/api/v1/sites/{code}/answers"), ("post", "/api/v1/sites/{code}/answers"),
    ("post", "/api/v1/answers/{answer_id}/review"),
    ("get", "/api/v1/sites/{code}/frontdesk-kpis"), ("post", "/api/v1/admin/sweeps/frontdesk"),
}


EXPECTED |= {  # billing (issue 17): late fees waived, lawsuits after the referral
    ("post", "/api/v1/late-fees/{invoice_id}/waive"), ("get", "/api/v1/lawsuits"),
    *{("post", f"/api/v1/lawsuits/{{code}}/{action}") for action in LAWSUIT_ACTIONS},
}

EXPECTED |= {  # customer care (issue 16): contacts, not moved in, the committee report
    ("post", "/api/v1/persons/{person_id}/contacts"), ("get", "/api/v1/persons/{person_id}/contacts"),
    ("get", "/api/v1/sites/{code}/not-moved-in"), ("get", "/api/v1/sites/{code}/committee-report"),
}


def test_the_committee_report_is_documented_as_html_and_json():
    answer = DOCUMENT["paths"]["/api/v1/sites/{code}/committee-report"]["get"]["responses"]["200"]
    assert set(answer["content"]) == {"application/json", "text/html"}
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CommitteeReportOut"}
    assert answer["content"]["text/html"]["schema"]["type"] == "string"


def operations(document):
    return {(method, path) for path, item in document["paths"].items() for method in item}


def test_it_is_an_openapi_3_document():
    assert DOCUMENT["openapi"].startswith("3.")
    assert DOCUMENT["info"]["title"] and DOCUMENT["info"]["version"]


def test_every_route_is_documented():
    assert operations(DOCUMENT) == EXPECTED


def test_every_reference_resolves():
    text = repr(DOCUMENT)
    schemas = DOCUMENT["components"]["schemas"]
    for name in re.findall(r"#/components/schemas/([\w.-]+)", text):
        assert name in schemas, name


def test_every_path_parameter_is_declared():
    for path, item in DOCUMENT["paths"].items():
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path


def test_request_bodies_are_the_services_schemas():
    body = DOCUMENT["paths"]["/api/v1/tickets"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/TicketIn"}
    ticket_in = DOCUMENT["components"]["schemas"]["TicketIn"]
    assert {"kind", "site", "channel", "description"} <= set(ticket_in["required"])
    dispatch = DOCUMENT["paths"]["/api/v1/tickets/{ticket_id}/dispatch"]["post"]["requestBody"]
    assert dispatch["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DispatchIn"}


def test_lists_are_pages_and_limit_is_bounded():
    listing = DOCUMENT["paths"]["/api/v1/tickets"]["get"]
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(DOCUMENT["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]["properties"]) == {
        "items", "next_cursor"}
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 200)
    assert {p["name"] for p in listing["parameters"]} >= {
        "site", "kind", "status", "overdue", "callback_due_before", "cursor"}


def test_creations_answer_201_and_errors_are_problems():
    responses = DOCUMENT["paths"]["/api/v1/sites"]["post"]["responses"]
    assert "201" in responses
    for status in ("401", "403", "422", "503"):
        assert "application/problem+json" in responses[status]["content"]


def test_api_operations_need_a_bearer_token_and_probes_do_not():
    assert DOCUMENT["paths"]["/api/v1/units"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in DOCUMENT["paths"]["/ready"]["get"]


def test_it_passes_the_openapi_specification_validator():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(DOCUMENT)


def test_each_operation_names_the_roles_and_scope_the_router_enforces():
    operation = DOCUMENT["paths"]["/api/v1/sites/{code}/sla-policy"]["post"]
    assert operation["x-roles"] == ["manager", "hq", "ops_admin"]
    assert operation["x-scope"] == "site"
    assert "manager" in operation["description"] and "the site in the path" in operation["description"]
    assert "x-roles" not in DOCUMENT["paths"]["/health"]["get"]
