"""The console's static files as the gateway serves them under /console/: the right types for
ES modules, a policy that lets the page load nothing from elsewhere, nothing outside its folder,
and no address of another origin anywhere in the files shipped."""
import re

import pytest

from services.gateway import console

ASSETS = sorted(p.relative_to(console.ROOT).as_posix() for p in console.ROOT.rglob("*") if p.is_file())


def test_console_redirects_to_its_folder_and_serves_the_page(gateway):
    redirect = gateway.get("/console", allow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["Location"] == "/console/"
    page = gateway.get("/console/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    again = gateway.get("/console/", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("name", ASSETS)
def test_every_shipped_file_is_served_with_its_type(gateway, name):
    answer = gateway.get("/console/" + name)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].split(";")[0] == {
        ".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
    }[name[name.rindex("."):]]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ASSETS)
def test_no_shipped_file_loads_anything_from_another_origin(name):
    text = (console.ROOT / name).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href|import|url|fetch)\s*\(?\s*["'`](https?:)?//""", text), name


@pytest.mark.parametrize("path", ["/console/../service.py", "/console/%2e%2e/service.py",
                                  "/console/.secret.js", "/console/nothing.js", "/console/views/",
                                  "/console/console.py"])
def test_nothing_else_is_served(gateway, path):
    answer = gateway.get(path)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"


def test_the_console_is_not_part_of_the_api_document(gateway):
    paths = gateway.get("/api/v1/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
    assert gateway.post("/console/", json={}).status_code == 405
