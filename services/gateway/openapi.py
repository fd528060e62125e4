"""The OpenAPI 3 document, generated from the route table with the services' own marshmallow
schemas, so that what is documented is what is validated."""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from services.gateway.web import BODY_METHODS, Problem

TITLE = "propdesk"
VERSION = "1.0.0"
PROBLEM_STATUSES = {
    "400": "Malformed JSON, or nested deeper than 32 levels", "401": "Missing or invalid bearer token",
    "403": "Not allowed for this caller or site", "404": "No such resource (or not yours)",
    "409": "Illegal state transition, or the same Idempotency-Key still in flight",
    "415": "The body is not sent as application/json",
    "422": "Invalid input; `errors` names every offending field",
    "503": "A service is down or did not answer in time; safe to retry",
}
IDEMPOTENCY_KEY = {
    "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": 200},
    "description": "Replays the first answer for the same key and body (header Idempotent-Replayed: true); "
                   "422 if reused with another body, 409 while the first is in flight.",
}
_pages = {}


def page_of(schema_cls):
    """{items: [schema], next_cursor} for a list answer."""
    if schema_cls not in _pages:
        _pages[schema_cls] = Schema.from_dict({
            "items": fields.List(fields.Nested(schema_cls)),
            "next_cursor": fields.String(allow_none=True),
        }, name=f"{schema_cls.__name__}Page")
    return _pages[schema_cls]


def build(routes):
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "The propdesk back office over HTTP. Errors are "
                                        "application/problem+json (RFC 9457)."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Problem", schema=Problem)
    for route in sorted(routes, key=lambda r: (r.template, r.method)):
        if route.actions:
            for action, body in sorted(route.actions.items()):
                path = route.template.replace("{action}", action)
                spec.path(path=path, operations={route.method.lower(): _operation(
                    route, body, path, f"{route.name}_{action.replace('-', '_')}")})
        else:
            spec.path(path=route.template, operations={route.method.lower(): _operation(
                route, route.body, route.template, route.name)})
    spec.path(path="/metrics", operations={"get": {
        "operationId": "metrics", "summary": "Prometheus metrics of the gateway", "tags": ["operations"],
        "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}})
    return _numeric_bounds(spec.to_dict())


def _numeric_bounds(node):
    """apispec renders the bounds of a Decimal(as_string=True) field through the field, as
    strings ("0.00"); OpenAPI wants numbers there."""
    if isinstance(node, dict):
        return {k: (float(v) if k in ("minimum", "maximum") and isinstance(v, str)
                    else _numeric_bounds(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_numeric_bounds(v) for v in node]
    return node


def _operation(route, body, path, operation_id):
    parameters = [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                  for name in _path_parameters(path)]
    if route.query is not None:
        parameters.append({"in": "query", "schema": route.query})
    answer = {"description": "OK" if route.status == 200 else "Created"}
    if route.response is not None:
        answer["content"] = {"application/json": {
            "schema": page_of(route.response) if route.many else route.response}}
    else:
        answer["content"] = {"application/json": {"schema": {"type": "object"}}}
    for content_type, description in route.media.items():
        answer["content"][content_type] = {"schema": {"type": "string", "description": description}}
    operation = {"operationId": operation_id, "summary": route.summary, "tags": [route.tag],
                 "responses": {str(route.status): answer, **_problems(route)}}
    if route.method in BODY_METHODS:
        if route.authenticated and route.method == "POST":
            parameters.append(IDEMPOTENCY_KEY)
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": body if body is not None else {"type": "object"}}}}
    if parameters:
        operation["parameters"] = parameters
    if route.authenticated:
        operation["security"] = [{"bearer": []}]
        # what the router enforces, said where client authors look
        operation["description"] = (f"Roles: {', '.join(route.roles)}. "
                                    f"Scope: {route.scope.description}.")
        operation["x-roles"] = list(route.roles)
        operation["x-scope"] = route.scope.kind
    return operation


def _problems(route):
    statuses = dict(PROBLEM_STATUSES)
    if not route.authenticated:
        statuses = {k: v for k, v in statuses.items() if k == "503"}
    elif route.method not in BODY_METHODS:
        for body_problem in ("400", "415"):
            statuses.pop(body_problem)
    return {status: {"description": text, "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}} for status, text in statuses.items()}


def _path_parameters(path):
    return re.findall(r"{([^}]+)}", path)
