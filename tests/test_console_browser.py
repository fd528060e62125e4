"""The front-desk console (/console/) in a real browser: headless Chromium from Debian's
package, driven by Playwright for Python, against the whole system running as processes.

The day itself is `tests/console_day.py` (an agent takes in a repair, dispatches it, the
technician completes it, the callback, the close, it leaves the handover list, the KPIs; a
site-002 agent sees none of it), run in a process of its own: Playwright's sync API does not
shut down inside this eventlet-patched one. A screenshot of each page is saved under the test's
tmp dir, and the paths are printed.

Needs /usr/bin/chromium (`apt-get install -y chromium`) and the pip package `playwright`
(pinned in constraints.txt; never `playwright install`: the browser is Debian's)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.console_day import AGENT, CHROMIUM, OTHER_AGENT, OTHER_SITE, SITE, TECHNICIAN, UNIT
from tests.flows import site_payload, unit_payload
from bench.harness import ROOT

pytestmark = pytest.mark.e2e

DAY_TIMEOUT = 120


def test_the_repair_day_in_the_browser(system, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian's package chromium ({CHROMIUM} is missing): apt-get install -y chromium")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("needs the pip package playwright (pinned in constraints.txt): make install")
    hq = system.client("hq", ["*"], sub="hq-zhao")
    for site in (SITE, OTHER_SITE):
        assert hq.post("/sites", site_payload(site, f"瑞和丰收大厦 {site}")).status_code == 201
    assert hq.post("/units", unit_payload(UNIT, "13812345678", owner="张三")).status_code == 201
    assert hq.post("/units", unit_payload(OTHER_SITE + "0101001", "13912345678", owner="李四")).status_code == 201
    tokens = {AGENT: system.token("agent", [SITE], sub=AGENT),
              TECHNICIAN: system.token("technician", [SITE], sub=TECHNICIAN),
              OTHER_AGENT: system.token("agent", [OTHER_SITE], sub=OTHER_AGENT)}
    settings = {"url": system.url, "shots": str(tmp_path / "screenshots"), "tokens": tokens}
    day = subprocess.run([sys.executable, "-m", "tests.console_day", json.dumps(settings)], cwd=ROOT,
                         capture_output=True, text=True, timeout=DAY_TIMEOUT)
    print(day.stdout)
    assert day.returncode == 0, f"{day.stdout}\n{day.stderr[-4000:]}"
    assert "the repair day is done" in day.stdout
