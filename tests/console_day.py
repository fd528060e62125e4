"""The repair day of issue 15 at the console, in headless Chromium driven by Playwright: run by
tests/test_console_browser.py in a process of its own (Playwright's sync API does not shut down
under eventlet's monkey-patching, which the test process has), and by hand:

    python -m tests.console_day '{"url": "http://127.0.0.1:8000", "shots": "/tmp/shots",
                                  "tokens": {"agent-li": "...", "tech-wang": "...", "agent-zhou": "..."}}'

An agent of site 001 signs in, takes in an urgent repair, sees it on the handover list with its
badge and dispatches it; the technician completes it (their "arrive" is a 409 first: they
arrived already from another device, the one API call here); the agent records the callback
and closes it, and it leaves the list; the KPIs and their CSV; an agent of site 002 sees none
of it (a 403 on the case). A screenshot of each page goes to `shots` (each path printed).
The site, the units and the tokens are the caller's (see the test)."""
import csv
import io
import json
import pathlib
import sys

import requests
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]
SITE, OTHER_SITE = "001", "002"
UNIT = "0010101001"
AGENT, TECHNICIAN, OTHER_AGENT = "agent-li", "tech-wang", "agent-zhou"
STEP_TIMEOUT_MS = 10_000
DESK, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}


class Desk:
    """One person at the console: a browser context of their own, signed in with their token."""

    def __init__(self, browser, url, shots, token, sub, viewport=DESK):
        self.url, self.shots, self.sub = url, shots, sub
        self.context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai",
                                           accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(STEP_TIMEOUT_MS)
        self.errors = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.token = token

    def sign_in(self):
        page = self.page
        page.goto(self.url + "/console/")
        page.wait_for_selector("#signin-form")
        page.fill("#token", self.token)
        self.shot("signin")
        page.click("#signin-submit")
        page.wait_for_selector("#whoami")
        return page.inner_text("#whoami")

    def go(self, hash_, ready):
        self.page.goto(self.url + "/console/" + hash_)
        self.page.wait_for_selector(ready)

    def shot(self, name):
        path = self.shots / f"{len(list(self.shots.iterdir())):02d}-{self.sub}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")

    def wait_status(self, status):
        self.page.wait_for_selector(f"#main .toolbar .status-{status}")


def repair_day(browser, url, tokens, shots):
    agent = Desk(browser, url, shots, tokens[AGENT], AGENT)

    # sign in: who, role and site
    who = agent.sign_in()
    assert AGENT in who and "前台客服" in who and SITE in who
    agent.page.wait_for_selector("#handover-list")
    agent.shot("handover-empty")

    # intake: the unit looked up by code shows the owner's masked phone; a 422 beside the field
    page = agent.page
    page.click("[data-nav=intake]")
    page.wait_for_selector("#intake-form")
    page.fill("#f-unit", UNIT)
    page.click("#lookup")
    assert "138****5678" in page.inner_text("#unit-info .ok")
    page.select_option("select[name=priority]", "urgent")
    page.click("#intake-submit")
    page.wait_for_selector("[data-field=description].invalid")
    assert page.inner_text("[data-field=description] .field-error")
    agent.shot("intake-422")
    page.fill("#f-description", "厨房水管漏水")
    page.click("#intake-submit")
    page.wait_for_selector("#ticket-code")
    code = page.inner_text("#ticket-code")
    ticket_id = page.url.rsplit("/", 1)[1]
    assert code.startswith("001-R-")
    agent.wait_status("received")
    assert page.is_visible("[data-action=dispatch]")
    agent.shot("case-received")

    # the handover list: the urgent repair, due for dispatch within 3 minutes, is on time
    page.click("[data-nav=handover]")
    row = page.wait_for_selector(f"#handover-list tr[data-code='{code}']")
    assert row.get_attribute("data-badge") == "ok"
    assert row.query_selector(".badge-ok") and "派工" in row.inner_text()
    agent.shot("handover")

    # dispatch from the case page: an empty assignee is the API's 422, beside the field
    row.query_selector("a.code").click()
    page.click("[data-action=dispatch]")
    page.click("[data-submit=dispatch]")
    page.wait_for_selector("[data-field=assignee].invalid")
    page.fill("#a-assignee", TECHNICIAN)
    page.click("[data-submit=dispatch]")
    agent.wait_status("dispatched")
    assert page.inner_text("#ticket-assignee") == TECHNICIAN

    # the technician: arrived already from another device, so the console's "arrive" is the
    # API's 409 in its own words; then the case as it is now, and completion
    tech = Desk(browser, url, shots, tokens[TECHNICIAN], TECHNICIAN, viewport=PHONE)
    tech.sign_in()
    tech.go(f"#/ticket/{ticket_id}", "[data-action=arrive]")
    arrived = requests.post(f"{url}/api/v1/tickets/{ticket_id}/arrive", json={}, timeout=30,
                            headers={"Authorization": f"Bearer {tokens[TECHNICIAN]}"})
    assert arrived.status_code == 200, arrived.text
    tech.page.click("[data-action=arrive]")
    conflict = tech.page.wait_for_selector("#ticket-problem .problem[data-status='409']")
    assert "cannot arrive a repair that is on_site" in conflict.inner_text()
    tech.wait_status("on_site")
    tech.shot("case-409")
    tech.page.click("[data-action=complete]")
    tech.page.fill("#a-result", "换了阀门")
    tech.page.check("#a-signed_off")
    tech.page.click("[data-submit=complete]")
    tech.wait_status("completed")
    tech.shot("case-completed")

    # the callback worklist: the completed repair, with the callback form
    agent.go("#/callbacks", "#callback-list")
    page.wait_for_selector(f"#callback-list tr[data-code='{code}']")
    page.click(f"[data-callback='{ticket_id}']")
    page.check(".callback-form input[name=satisfaction][value='5']", force=True)
    page.fill(".callback-form textarea[name=comment]", "师傅很快")
    agent.shot("callback-form")
    page.click(".callback-form [data-submit=record-callback]")
    page.wait_for_selector(f"#callback-list tr[data-code='{code}']", state="detached")
    agent.shot("callbacks-done")
    agent.go("#/overdue", "#overdue-list")
    agent.shot("overdue")

    # close from the case page: callback recorded, history complete
    agent.go(f"#/ticket/{ticket_id}", "[data-action=close]")
    assert "5/5" in page.inner_text("#ticket-callback")
    page.click("[data-action=close]")
    agent.wait_status("closed")
    history = page.inner_text("#ticket-history")
    for step in ("受理", "派工", "到场", "完工", "回访", "结案"):
        assert step in history
    agent.shot("case-closed")

    # it has left the handover list
    agent.go("#/handover", "#handover-list")
    page.wait_for_selector("#refreshed:has-text('上次')")
    assert page.query_selector(f"#handover-list tr[data-code='{code}']") is None
    agent.shot("handover-after")

    # the month's figures and charts, and the API's CSV
    agent.go("#/kpis", "#kpi-body .tiles")
    assert page.inner_text("[data-received=repair] strong") == "1"
    assert page.query_selector("#kpi-body svg.chart")
    with page.expect_download() as downloaded:
        page.click("#kpi-csv")
    rows = list(csv.DictReader(io.StringIO(open(downloaded.value.path(), encoding="utf-8").read())))
    assert rows[0]["site"] == SITE and rows[0]["callback_rate"] == "1.0"
    agent.shot("kpis")

    # an agent of site 002 sees none of it: not on their list, and the case is a 403
    other = Desk(browser, url, shots, tokens[OTHER_AGENT], OTHER_AGENT)
    assert OTHER_SITE in other.sign_in()
    other.page.wait_for_selector("#refreshed:has-text('上次')")
    assert other.page.query_selector(f"tr[data-code='{code}']") is None
    assert other.page.query_selector("#site option[value='001']") is None
    other.shot("handover-002")
    other.go(f"#/ticket/{ticket_id}", ".problem[data-status='403']")
    assert "belongs to another site" in other.page.inner_text(".problem")
    other.shot("case-403")

    # sign out
    page.click("#signout")
    page.wait_for_selector("#signin-form")
    assert not page.is_visible("#whoami")

    for person in (agent, tech, other):
        assert person.errors == [], person.errors


def main(argv):
    settings = json.loads(argv[1])
    shots = pathlib.Path(settings["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {shots}", flush=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS)
        repair_day(browser, settings["url"].rstrip("/"), settings["tokens"], shots)
        browser.close()
    print("the repair day is done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
