"""Demo data, loaded through the gateway as a front desk would enter it: a site, its fee
schedule, three homes and a shop with their owners, one owner moved in, this month's bills, a
repair on its way and a complaint. Every POST carries a fixed Idempotency-Key, so loading
twice (within the gateway's retention) changes nothing.

    .venv/bin/python deploy/local/demo.py [--url http://127.0.0.1:8000]

(`make demo` against a running system; `make run DEMO=1` / `make up DEMO=1` load it once up.)
"""
import argparse
import os
import sys
from datetime import datetime, timezone

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from services.gateway.tokens import mint  # noqa: E402

SITE = "001"
OWNERS = [
    ("0011020301", "residential", "88.50", "张三", "13812341234", "zhang3@example.com"),
    ("0011020302", "residential", "96.00", "李四", "13900005678", None),
    ("0011020303", "residential", "120.25", "王五", "13700007777", None),
    ("0011010101", "commercial", "45.00", "赵六商行", "13600006666", None),
]


class Desk:
    """The API as one member of staff, every POST idempotent under `demo-<name>`."""

    def __init__(self, url, secret, sub, role):
        self.base = url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {mint(sub, role, [SITE], secret=secret)}"

    def post(self, path, body, key):
        response = self.session.post(self.base + path, json=body, timeout=30,
                                     headers={"Idempotency-Key": f"demo-{key}"})
        if response.status_code >= 400 and response.status_code != 409:   # 409: already there
            raise SystemExit(f"POST {path} answered {response.status_code}: {response.text}")
        return response.json()


def load(url, secret):
    manager = Desk(url, secret, "mgr-wu", "manager")
    agent = Desk(url, secret, "agent-li", "agent")
    technician = Desk(url, secret, "tech-wang", "technician")
    manager.post("/sites", {"code": SITE, "name": "瑞和丰收大厦", "timezone": "Asia/Shanghai"}, "site")
    manager.post("/fee-schedules", {"site": SITE, "management_per_m2": {"residential": "2.50",
                                                                      "commercial": "4.00"},
                                    "parking_per_month": "150.00"}, "fee-schedule")
    for code, usage, area, name, phone, email in OWNERS:
        agent.post("/units", {"code": code, "usage": usage, "area_m2": area,
                              "handover_date": "2025-06-30",
                              "owner": {"name": name, "phone": phone, "email": email}}, f"unit-{code}")
    agent.post(f"/units/{OWNERS[0][0]}/move-in",
               {"assistant": {"name": "王芳", "phone": "13700001111"}}, "move-in")
    period = datetime.now(timezone.utc).strftime("%Y-%m")
    manager.post("/billing/runs", {"site": SITE, "period": period}, f"billing-run-{period}")
    repair = agent.post("/tickets", {"kind": "repair", "site": SITE, "unit": OWNERS[0][0],
                                     "channel": "phone", "description": "厨房水管漏水"}, "repair")
    agent.post(f"/tickets/{repair['id']}/dispatch", {"assignee": "tech-wang"}, "repair-dispatch")
    technician.post(f"/tickets/{repair['id']}/arrive", {}, "repair-arrive")
    agent.post("/tickets", {"kind": "complaint", "site": SITE, "unit": OWNERS[1][0], "channel": "phone",
                            "description": "楼道灯坏了一周", "severity": "B", "category": "GC",
                            "scope": "common_area"}, "complaint")
    return repair


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PROPDESK_GATEWAY_PORT', '8000')}")
    args = parser.parse_args(argv)
    secret = os.environ.get("PROPDESK_JWT_SECRET", "dev-secret-change-me-at-least-32-bytes")
    repair = load(args.url, secret)
    print(f"demo data loaded at {args.url}: site {SITE}, {len(OWNERS)} units with owners, "
          f"this month's bills, repair {repair['code']} on site, a complaint")
    print(f"as the front desk: {os.path.join('.venv', 'bin', 'propdesk-token')} --sub agent-li --role agent --sites {SITE}")


if __name__ == "__main__":
    main()
