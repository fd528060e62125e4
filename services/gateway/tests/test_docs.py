"""/api/v1/docs: Swagger UI served by the gateway from the files it ships, opened in headless
Chromium (Debian's `chromium`; `make test` installs it)."""
import re
import shutil
import subprocess

import pytest
import requests

from services.gateway import docs

CHROMIUM_TIMEOUT = 120
SWAGGER_UI_JS = re.compile(r"<script src=\"(/api/v1/docs/[^\"]+)\"")


def chromium():
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed: `apt-get install -y chromium` "
                "(`make tools`, run by `make test`, does when it may)")


def rendered_dom(url, tmp_path):
    """The page's DOM once its scripts have run and fetched what they fetch (a virtual-time budget)."""
    browser = chromium()
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--no-first-run",
               f"--user-data-dir={tmp_path / 'chromium-profile'}",
               "--virtual-time-budget=20000", "--dump-dom", url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish rendering {url} within {CHROMIUM_TIMEOUT} s")
    if done.returncode != 0 and not done.stdout.strip():
        pytest.skip(f"chromium cannot run here (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def test_the_docs_page_lists_every_operation_in_a_browser(gateway, tmp_path):
    document = gateway.get("/api/v1/openapi.json").json()
    operation_ids = {operation["operationId"]
                     for item in document["paths"].values() for operation in item.values()}

    dom = rendered_dom(gateway.url(docs.DOCS), tmp_path)

    assert 'class="swagger-ui' in dom, dom[:2000]
    # Swagger UI lists each operation as a row with its path, summary and operationId.
    listed = set(re.findall(r'<span class="opblock-summary-operation-id">([^<]+)</span>', dom))
    assert listed == operation_ids, f"missing: {sorted(operation_ids - listed)}"
    paths = {path.replace("<wbr>", "") for path in re.findall(
        r'<a class="nostyle" href="#/[^"]+"><span>([^<]*(?:<wbr>[^<]*)*)</span></a>', dom)}
    assert set(document["paths"]) <= paths, sorted(set(document["paths"]) - paths)


def test_the_page_and_its_files_come_from_the_gateway(gateway):
    page = gateway.get(docs.DOCS)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/api/v1/openapi.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from the internet

    for src in SWAGGER_UI_JS.findall(page.text) + ["/api/v1/docs/swagger-ui.css"]:
        answer = gateway.get(src)
        assert answer.status_code == 200, src
        assert len(answer.content) > 10_000, src


def test_only_the_pages_own_files_are_served(gateway):
    for name in ("index.html", "swagger-ui-bundle.js.map", "..%2F__init__.py", "nope.js"):
        answer = gateway.get(f"{docs.DOCS}/{name}")
        assert answer.status_code == 404, name
        assert answer.headers["Content-Type"] == "application/problem+json"
