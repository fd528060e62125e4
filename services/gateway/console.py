"""The front-desk console (前台工作台): static files under /console/, served by the gateway.

The console is plain ES modules, hand-written CSS and SVG drawn in the browser, all shipped in
`services/gateway/console/`; nothing is built and nothing is fetched from anywhere else at run
time (the Content-Security-Policy below says so to the browser too). It has no back door: every
figure it shows and every step it takes is a call to /api/v1 with the user's own bearer token,
so the gateway and the services check it exactly as they check curl.

`ConsoleRoutes` is mixed into the gateway's service class. Its entrypoints are Nameko `@http`
handlers of their own, outside `@route`: they read no token and call no service, and they are
not part of the API (nor of its OpenAPI document).
"""
import hashlib
from pathlib import Path

from werkzeug.wrappers import Response

from services.common.entrypoints import http
from services.common.errors import NotFound
from services.gateway.web import correlation_id_of, problem_response

ROOT = Path(__file__).with_name("console")
PREFIX = "/console/"
# What may be served, by suffix; anything else under the folder is 404.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",   # ES modules need a JavaScript MIME type
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
HEADERS = {
    # Only this origin: the console's own files and the API beside them.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated every time (cheap: an ETag), so that an upgrade shows at the next load.
    "Cache-Control": "no-cache",
}


def asset_path(name):
    """The file `name` (relative to the console folder) may serve, or None: no hidden files,
    nothing outside the folder, only the suffixes above."""
    if not name or name.endswith("/"):
        name = (name or "") + "index.html"
    parts = name.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return None
    path = (ROOT / name).resolve()
    if ROOT.resolve() not in path.parents or path.suffix not in CONTENT_TYPES or not path.is_file():
        return None
    return path


def serve_asset(request, name):
    path = asset_path(name)
    if path is None:
        return problem_response(NotFound(f"no console file {name}"), request.path,
                                correlation_id_of(request))
    body = path.read_bytes()
    etag = hashlib.sha256(body).hexdigest()[:32]
    headers = {**HEADERS, "ETag": f'"{etag}"'}
    if etag in {tag.strip().strip('"') for tag in request.headers.get("If-None-Match", "").split(",")}:
        return Response(status=304, headers=headers)
    return Response(body, status=200, headers=headers, content_type=CONTENT_TYPES[path.suffix])


class ConsoleRoutes:  # a mixin, imported as console.ConsoleRoutes: `nameko run` sees one service
    """GET /console/ (index.html) and /console/<file>; /console redirects to /console/."""

    @http("GET", "/console")
    def console_redirect(self, request):
        return Response(status=308, headers={"Location": PREFIX})

    @http("GET", PREFIX)
    def console_index(self, request):
        return serve_asset(request, "index.html")

    @http("GET", PREFIX + "<path:name>")
    def console_asset(self, request, name):
        return serve_asset(request, name)
