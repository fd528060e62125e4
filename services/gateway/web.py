"""Requests in and responses out: JSON bodies, query strings, correlation ids, and RFC 9457
problem documents for every error the gateway answers."""
import functools
import http.client
import json
import re
import uuid
from datetime import date, datetime

import eventlet.wsgi
from marshmallow import Schema, ValidationError, fields
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from services.common.errors import PROBLEMS, ProblemError, ServiceUnavailable, ValidationFailed

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
CORRELATION_HEADER = "X-Correlation-Id"
MAX_BODY_BYTES = 1 << 20
BODY_METHODS = ("POST", "PUT")      # a PUT is idempotent by itself: no Idempotency-Key
MAX_DEPTH = 32
# eventlet's wsgi answers a header line above 8 KB with an empty 400, and the standard library's
# header parser (under it) one above 64 KB with an HTML 431, before the gateway sees the request:
# an oversized token could not be answered as the 401 problem it is. They still bound a
# request's headers, at this size (module globals, the only setting either offers).
MAX_HEADER_BYTES = 512 << 10
eventlet.wsgi.MAX_HEADER_LINE = eventlet.wsgi.MAX_TOTAL_HEADER_SIZE = MAX_HEADER_BYTES
http.client._MAXLINE = MAX_HEADER_BYTES
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,100}")

# Methods that carry a JSON body (only POST also takes an Idempotency-Key: a PUT is idempotent)
BODY_METHODS = ("POST", "PUT")


class MalformedRequest(ProblemError):
    status = 400
    type = PROBLEMS + "malformed-request"
    title = "Malformed request"


class MethodNotAllowed(ProblemError):
    status = 405
    type = PROBLEMS + "method-not-allowed"
    title = "Method not allowed"


class PayloadTooLarge(ProblemError):
    status = 413
    type = PROBLEMS + "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    type = PROBLEMS + "unsupported-media-type"
    title = "Unsupported media type"


class InternalError(ProblemError):
    status = 500
    type = PROBLEMS + "internal"
    title = "Internal error"


# The RFC 9457 extension members a problem may carry, each saying what it is about: every key
# a ProblemError's `extra` has anywhere in services/ (test_problems checks the code against it).
# Values are what the raising code puts there; null where it may have none.
_TEXT = ("action", "answer_id", "cap", "channel", "code", "current_status", "deactivated",
         "entered_by", "field", "id", "invoice_id", "message_id", "moved_in_on", "number",
         "period", "person_id", "plate", "publish_by", "rental_id", "renovation_id", "site",
         "space", "starts_at", "template", "ticket_id", "change_request_id", "unit", "verified_by",
         "year")
_LISTS = ("allowed_decisions", "allowed_methods", "allowed_roles", "down", "missing_documents",
          "rule_violations")
EXTENSION_MEMBERS = (*_TEXT, *_LISTS, "capacity", "checks", "reference", "errors", "service",
                     "allowed_actions")


# RFC 9457 problem document (OpenAPI only; answers are built by `problem_response`): the
# standard members, and exactly the extension members of EXTENSION_MEMBERS.
Problem = Schema.from_dict({
    "type": fields.String(required=True),
    "title": fields.String(required=True),
    "status": fields.Integer(required=True),
    "detail": fields.String(),
    "instance": fields.String(),
    "correlation_id": fields.String(),
    "errors": fields.Dict(metadata={"description": "422: {field: [message, ...]} for every offending field"}),
    "service": fields.String(metadata={"description": "503: the service that is down or timed out"}),
    "allowed_actions": fields.List(fields.String(), metadata={
        "description": "409: the actions this caller may take in the current state"}),
    "capacity": fields.Integer(allow_none=True, metadata={"description": "409: the activity is full"}),
    "checks": fields.Dict(metadata={"description": "503 of /ready: each dependency's state"}),
    "reference": fields.Dict(allow_none=True, metadata={"description": "the invoice's reference"}),
    **{name: fields.String(allow_none=True) for name in _TEXT},
    **{name: fields.List(fields.Raw(), allow_none=True) for name in _LISTS},
}, name="Problem")


def correlation_id_of(request):
    """The caller's X-Correlation-Id when it is a sane token, else a new one."""
    given = request.headers.get(CORRELATION_HEADER, "")
    return given if _CORRELATION.fullmatch(given) else uuid.uuid4().hex


def as_problem(exc):
    """Every exception as the problem the client sees; anything unexpected becomes a 500
    without internals (and is logged with its traceback by the caller)."""
    if isinstance(exc, ProblemError):
        return exc
    if isinstance(exc, SQLAlchemyError):
        return ServiceUnavailable("the gateway's idempotency store is unavailable",
                                  {"service": "gateway-db"})
    return InternalError("an unexpected error occurred; quote the correlation id when reporting it")


def problem_response(problem, instance, correlation_id):
    document = {**problem.extra, "type": problem.type, "title": problem.title,
                "status": problem.status, "detail": problem.detail, "instance": instance,
                "correlation_id": correlation_id}
    headers = {}
    if problem.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="propdesk"'
    if problem.status == 405:
        headers["Allow"] = ", ".join(problem.extra.get("allowed_methods", ()))
    if problem.status == 503:
        headers["Retry-After"] = "1"
    return Response(_dumps(document), status=problem.status, headers=headers,
                    content_type=PROBLEM_JSON)


def json_response(data, status=200):
    return Response(_dumps(data), status=status, content_type=JSON)


def read_body(request):
    """The raw body, at most MAX_BODY_BYTES (also when sent chunked)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body may be at most {MAX_BODY_BYTES} bytes")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body may be at most {MAX_BODY_BYTES} bytes")
    return raw


def parse_json(raw, content_type):
    """The JSON document of a body of `content_type` (its mimetype); an empty body is an empty
    object. Nesting, lone surrogates and NaN are refused here, for every route at once."""
    if not raw.strip():
        return {}
    if content_type != JSON:
        raise UnsupportedMediaType(f"send the body as {JSON}, not {content_type or 'untyped'}",
                                   {"errors": {"body": [f"Content-Type must be {JSON}"]}})
    try:
        text = raw.decode("utf-8")
        _refuse_deep_nesting(text)
        document = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}",
                               {"errors": {"body": [str(exc)]}}) from exc
    _refuse_lone_surrogates(document)
    return document


# A string (escapes included) or a bracket: the brackets outside strings are the nesting.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _refuse_deep_nesting(text):
    # Counted before parsing: the parser (and anything walking its result) recurses per level,
    # and 10,000 levels overflow the stack.
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        elif bracket in "]}":
            depth -= 1


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _refuse_lone_surrogates(document):
    # "\ud800" is valid JSON but no text: it cannot be encoded to UTF-8 for the bus or a store.
    # A key is checked before it becomes part of a path, so that the path is printable.
    pending = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _refuse_surrogate_in(key, path)
                pending.append((_at(path, key), item))
        elif isinstance(value, list):
            pending.extend((_at(path, index), item) for index, item in enumerate(value))
        elif isinstance(value, str):
            _refuse_surrogate_in(value, path)


def _refuse_surrogate_in(text, path):
    if _SURROGATE.search(text):
        raise ValidationFailed.from_messages({path or "body": ["contains a lone surrogate, which is not text"]})


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _at(path, key):
    return f"{path}.{key}" if path else str(key)


@functools.cache
def _schema(schema_cls):
    """One instance per route schema: building one deep-copies its fields, which costs more
    than the check itself; validating and loading keep no state on the instance."""
    return schema_cls()


def validate(schema_cls, data):
    """Check `data` with the owning service's schema; a 422 naming every offending field.
    The caller forwards the document as sent: the service loads (and checks) it again."""
    errors = _schema(schema_cls).validate(data) if isinstance(data, dict) else {
        "_schema": ["the body must be a JSON object"]}
    if errors:
        raise ValidationFailed.from_messages(errors)


def load_query(schema_cls, args):
    """Query parameters loaded with `schema_cls` and made JSON-friendly for RPC (instants as
    ISO strings); unknown parameters are refused by name, so that a typo is not ignored."""
    try:
        data = _schema(schema_cls).load(_repair_plus(args.to_dict()))
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc
    return {k: _jsonable(v) for k, v in data.items()}


def _repair_plus(params):
    # A '+' in an unencoded offset (…T09:00:00+08:00) arrives as a space.
    return {k: (v.replace(" ", "+") if _LOOKS_LIKE_INSTANT.match(v) else v) for k, v in params.items()}


_LOOKS_LIKE_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}:?\d{2}$")


def _jsonable(value):
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def _dumps(data):
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
