"""The API's browsable documentation at /api/v1/docs: Swagger UI, served from the files the
pinned `swagger-ui-bundle` package ships (nothing is fetched from the internet), reading the
gateway's own /api/v1/openapi.json."""
from functools import lru_cache

from swagger_ui_bundle import swagger_ui_path
from werkzeug.wrappers import Response

from services.common.errors import NotFound

DOCS = "/api/v1/docs"
OPENAPI = "/api/v1/openapi.json"

# The only files the page needs (the package ships source maps and ES bundles as well).
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
ASSET_CACHE = "public, max-age=86400"

# BaseLayout: no top bar with a box to load another document's URL.
PAGE = f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>propdesk API</title>
    <link rel="stylesheet" href="{DOCS}/swagger-ui.css">
    <link rel="icon" type="image/png" href="{DOCS}/favicon-32x32.png" sizes="32x32">
    <link rel="icon" type="image/png" href="{DOCS}/favicon-16x16.png" sizes="16x16">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{DOCS}/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        url: "{OPENAPI}",
        dom_id: "#swagger-ui",
        deepLinking: true,
        displayOperationId: true,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      }});
    </script>
  </body>
</html>
"""


def page():
    return Response(PAGE, status=200, content_type="text/html; charset=utf-8")


def asset(name):
    if name not in ASSETS:
        raise NotFound(f"no such file: {DOCS}/{name}")
    return Response(_read(name), status=200, content_type=ASSETS[name],
                    headers={"Cache-Control": ASSET_CACHE})


@lru_cache(maxsize=None)
def _read(name):
    return (swagger_ui_path / name).read_bytes()
