"""Fault injection: repair, renovation and billing flows through the gateway while processes are
killed with SIGKILL at random moments and the broker restarts, counting what a client or an
auditor would notice.

    .venv/bin/python -m bench.chaos [--flows 1000] [--clients 8] [--kill-every 12]
                                    [--outages 2] [--db sqlite|postgres] [--broker node|link]

The whole system runs as processes on a broker of its own. `--broker node` (the default) starts
a RabbitMQ node for the run (bench.harness.RabbitNode: its own name, ports and data) and restarts
it for real, `rabbitmqctl stop_app`, 5-30 s, `start_app`; `--broker link` reaches the shared
RabbitMQ through a BrokerLink and cuts that link instead (connections drop, new ones are
refused). The processes are started and restarted by the local launcher's Supervisor
(deploy/local/launch.py, back-off 1 s doubling to 30 s), as `make up` runs them: no one
restarts anything by hand, and nothing here restarts a process. The services are killed in turn
(each round in a random order) at random moments, the gateway included.

The flows, mixed (`--mix repair:renovation:billing:run`, default 5:2:2:1):
- repair: open → dispatch → arrive → complete (its callback: one staff message, one SMS);
- renovation, on a unit of its own: apply → review (approved) → sign → billing's invoice paid
  at the desk → permitted → request-inspection → inspect (passed) → the deposit refunded by
  billing → archived by itself;
- billing, on a unit of its own: the unit → an invoice → its payment → the account settled
  (balance 0, no credit; one bill and one receipt SMS);
- run: the monthly billing run of a period on site 002 → one invoice per unit, once.
Each POST carries its own Idempotency-Key; 503s, in-flight 409s and dropped connections are
retried with the same key. Afterwards every POST is sent once more with its key and compared
with its first answer. Counts printed (target 0 each, except flows, kills and outages):

    flows, kills, outages, client-visible failures, objects created twice for one key,
    retries answered differently, messages lost, messages duplicated, events left unpublished
"""
import eventlet
import eventlet.tpool  # noqa: E402
eventlet.monkey_patch()  # noqa: E402 — the BrokerLink and the clients are green threads

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from contextlib import ExitStack  # noqa: E402

import requests  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.harness import (  # noqa: E402
    AGENT, CALLBACK_EVENT, CONFIG, REPAIR_TO_COMPLETION, SERVICES, SUB_OF_ROLE, BrokerLink,
    PostgresDatabase, RabbitNode, System, Vhost, migrated, repair_payload, site_payload,
    unit_payload, write_results,
)
from services.renovation.domain import REQUIRED_DOCUMENTS  # noqa: E402

SITE, RUN_SITE = "001", "002"
RUN_UNITS = 10
SECRET = "propdesk-chaos-secret-0123456789abcdef"
RETRYABLE = {502, 503, 504}
GIVE_UP_SECONDS = 240
SCHEDULE = {"management_per_m2": {"residential": "2.50"}, "renovation_management": "5.00",
            "renovation_deposit": "2000.00", "debris_removal": "300.00"}
BAD = ("client-visible failures", "objects created twice for one key",
       "retries answered differently", "messages lost", "messages duplicated",
       "events left unpublished")
KINDS = ("repair", "renovation", "billing", "run")


def launcher_module():
    """deploy/local/launch.py, whose Supervisor starts and restarts the processes."""
    spec = importlib.util.spec_from_file_location(
        "propdesk_launch", os.path.join(ROOT, "deploy", "local", "launch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Client:
    """One caller's requests with retries on the same key; every first answer kept."""

    def __init__(self, system, role, sub, stats, answers, sites=(SITE,)):
        self.system, self.stats, self.answers = system, stats, answers
        self.headers = system.headers(role, list(sites), sub=sub)

    def post(self, path, body):
        key = uuid.uuid4().hex
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                response = requests.post(self.system.url + "/api/v1" + path, json=body,
                                         headers={**self.headers, "Idempotency-Key": key},
                                         timeout=30)
            except requests.RequestException:
                self.stats["retries"] += 1
                time.sleep(1)
                continue
            in_flight = response.status_code == 409 and "in-flight" in response.text
            if response.status_code in RETRYABLE or in_flight:
                self.stats["retries"] += 1
                time.sleep(0.5 if in_flight else 1)
                continue
            try:
                answer = response.json()
            except ValueError:   # not a JSON answer: what a client would notice, kept to show
                self.stats["answers not JSON"] += 1
                print(f"chaos: POST {path} answered {response.status_code} not JSON: "
                      f"{response.headers.get('Content-Type')} {response.text[:300]!r}",
                      file=sys.stderr, flush=True)
                return None
            self.answers.append((self.headers, path, body, key, response.status_code, answer))
            if response.status_code >= 300:   # shown, so that a failure can be explained
                print(f"chaos: POST {path} (key {key}) answered {response.status_code} "
                      f"{response.text[:300]}", file=sys.stderr, flush=True)
            return response
        print(f"chaos: POST {path} (key {key}) gave up after {GIVE_UP_SECONDS} s of retries",
              file=sys.stderr, flush=True)
        return None

    def get(self, path, **params):
        """A read, retried through outages (reads need no key)."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                response = requests.get(self.system.url + "/api/v1" + path, params=params,
                                        headers=self.headers, timeout=30)
                if response.status_code not in RETRYABLE:
                    return response
            except requests.RequestException:
                pass
            self.stats["retries"] += 1
            time.sleep(1)
        return None

    def until(self, path, done, **params):
        """The first answer of GET `path` for which done(json) holds, or None at the deadline."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            response = self.get(path, **params)
            if response is not None and response.status_code == 200 and done(response.json()):
                return response.json()
            time.sleep(1)
        return None


def failed(stats, kind, what):
    stats["client-visible failures"] += 1
    stats[f"failures: {kind} {what}"] += 1
    return None


def repair_flow(system, n, stats, answers):
    unit = system.chaos_units[n % len(system.chaos_units)]
    desk = Client(system, "agent", AGENT, stats, answers)
    description = f"chaos repair {n} {uuid.uuid4().hex[:6]}"
    opened = desk.post("/tickets", repair_payload(unit, description))
    if opened is None or opened.status_code != 201:
        return failed(stats, "repair", "open")
    ticket_id = opened.json()["id"]
    for action, payload, role in REPAIR_TO_COMPLETION:
        step = Client(system, role, SUB_OF_ROLE.get(role, role), stats, answers).post(
            f"/tickets/{ticket_id}/{action}", payload)
        if step is None or step.status_code != 200:
            return failed(stats, "repair", action)
    return ("repair", ticket_id)


def flow_unit(n):
    """The unit of its own a renovation or billing flow makes: 001 building 5+, floor, room."""
    return f"{SITE}{5 + n // 10000:02d}{n // 100 % 100 + 1:02d}{n % 100 + 1:03d}"


def new_unit(desk, n, stats):
    unit = flow_unit(n)
    made = desk.post("/units", unit_payload(unit, f"139{n:08d}", area="88.50"))
    if made is not None and made.status_code == 201:
        return unit
    print(f"unit {unit}: {made is not None and made.status_code} {made is not None and made.text[:300]}",
          file=sys.stderr)
    return None


def renovation_flow(system, n, stats, answers):
    desk = Client(system, "agent", "chaos-desk", stats, answers)
    manager = Client(system, "manager", "chaos-manager", stats, answers)
    unit = new_unit(desk, n, stats)
    if unit is None:
        return failed(stats, "renovation", "unit")
    today = time.strftime("%Y-%m-%d")
    application = {
        "unit": unit, "applicant": {"name": "张三", "phone": "13812341234", "is_owner": True},
        "contractor": {"name": "好家装饰", "licence_no": "91110000MA01"},
        "workers": [{"name": "王工", "id_number": "110101199001011234"}],
        "planned": {"start": today, "end": time.strftime(
            "%Y-%m-%d", time.gmtime(time.time() + 30 * 86400))},
        "work_items": ["flooring", "painting"], "documents": list(REQUIRED_DOCUMENTS),
        "debris_removal": True}
    applied = desk.post("/renovations", application)
    if applied is None or applied.status_code != 201:
        return failed(stats, "renovation", "apply")
    rid = applied.json()["id"]
    for client, action, payload in ((manager, "review", {"decision": "approved"}),
                                    (desk, "sign", {})):
        step = client.post(f"/renovations/{rid}/{action}", payload)
        if step is None or step.status_code != 200:
            return failed(stats, "renovation", action)
    account = desk.until(f"/units/{unit}/account", lambda a: a["open_invoices"])
    if account is None:
        return failed(stats, "renovation", "invoice")
    owed = sum(float(i["outstanding"]) for i in account["open_invoices"])
    paid = desk.post("/payments", {"unit": unit, "amount": f"{owed:.2f}", "method": "cash"})
    if paid is None or paid.status_code != 201:
        return failed(stats, "renovation", "payment")
    if desk.until(f"/renovations/{rid}", lambda r: r["status"] == "permitted") is None:
        return failed(stats, "renovation", "permit")
    for client, action, payload in ((desk, "request-inspection", {}),
                                    (manager, "inspect", {"passed": True, "notes": "合格"})):
        step = client.post(f"/renovations/{rid}/{action}", payload)
        if step is None or step.status_code != 200:
            return failed(stats, "renovation", action)
    if desk.until(f"/renovations/{rid}", lambda r: r["status"] == "closed") is None:
        return failed(stats, "renovation", "archived")
    return ("renovation", unit)


def billing_flow(system, n, stats, answers):
    desk = Client(system, "agent", "chaos-desk", stats, answers)
    unit = new_unit(desk, n, stats)
    if unit is None:
        return failed(stats, "billing", "unit")
    invoice = desk.post("/invoices", {"unit": unit, "period": "2026-01", "due_date": "2026-01-15",
                                      "items": [{"fee": "management", "amount": "223.75"}]})
    if invoice is None or invoice.status_code != 201:
        return failed(stats, "billing", "invoice")
    paid = desk.post("/payments", {"unit": unit, "amount": "223.75", "method": "wechat",
                                   "reference": f"WX-{n}"})
    if paid is None or paid.status_code != 201:
        return failed(stats, "billing", "payment")
    return ("billing", unit)


def run_flow(system, n, stats, answers):
    manager = Client(system, "manager", "chaos-manager", stats, answers, sites=(SITE, RUN_SITE))
    period = f"{2000 + n // 12 % 100:04d}-{n % 12 + 1:02d}"
    ran = manager.post("/billing/runs", {"site": RUN_SITE, "period": period})
    if ran is None or ran.status_code != 200:
        return failed(stats, "run", "run")
    return ("run", period)


FLOWS = {"repair": repair_flow, "renovation": renovation_flow, "billing": billing_flow,
         "run": run_flow}


def flow(system, kind, n, stats, answers, until):
    if time.monotonic() > until:   # the time budget is spent: not started, counted apart
        stats["flows not started (time budget)"] += 1
        return None
    done = FLOWS[kind](system, n, stats, answers)
    if done:
        stats["flows"] += 1
        stats[f"flows: {kind}"] += 1
        if stats["flows"] % 50 == 0:
            print(f"chaos: {stats['flows']} flows, {stats['kills']} kills, {stats['outages']} broker "
                  f"restarts, {stats['client-visible failures']} failures", file=sys.stderr, flush=True)
    return done


def kill_in_turn(launcher, stats, stop, every):
    """SIGKILL one process at a random moment (mean `every` s), each round every service once
    in a random order; the launcher notices and restarts it."""
    while not stop.ready():
        order = list(SERVICES)
        random.shuffle(order)
        for service in order:
            eventlet.sleep(random.uniform(0.5 * every, 1.5 * every))
            if stop.ready():
                return
            child = launcher.children.get(service)
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGKILL)
                stats["kills"] += 1
                stats[f"kills of {service}"] += 1


def restart_broker(broker, stats, stop, outages, spacing):
    """`outages` restarts, `spacing` s apart: the node's stop_app / start_app, or the link cut."""
    for _ in range(outages):
        eventlet.sleep(spacing)
        if stop.ready():
            return
        seconds = random.uniform(5, 30)
        broker.down()
        stats["outages"] += 1
        stats["outage seconds"] += round(seconds)
        eventlet.sleep(seconds)
        broker.up()


class NodeRestarts:
    def __init__(self, node):
        self.node, self.is_down = node, False

    def down(self):
        self.is_down = True
        eventlet.tpool.execute(self.node.stop_app)

    def up(self):
        eventlet.tpool.execute(self.node.start_app)
        self.is_down = False


class LinkCuts:
    def __init__(self, link):
        self.link = link

    @property
    def is_down(self):
        return self.link.listener is None

    def down(self):
        self.link.cut()

    def up(self):
        self.link.restore()


def settled(system, launcher, timeout=300):
    """Until every process runs and the gateway's /ready answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.poll() is None for c in launcher.children.values()):
            try:
                if requests.get(system.url + "/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(1)
    raise RuntimeError(f"not ready {timeout} s after the run\n{system.log_tails()}")


def everything(client, path, **params):
    items, cursor = [], None
    while True:
        page = client.get(path, limit=200, **params, **({"cursor": cursor} if cursor else {})).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def audit(system, done, answers, stats):
    hq = Client(system, "hq", "chaos-hq", stats, [], sites=("*",))
    time.sleep(15)   # the outbox relays and notifications settle
    twice = 0
    by_description = Counter(t["description"] for t in everything(hq, "/tickets", site=SITE))
    twice += sum(n - 1 for n in by_description.values() if n > 1)
    by_unit = Counter(r["unit"] for r in everything(hq, "/renovations", site=SITE))
    twice += sum(n - 1 for n in by_unit.values() if n > 1)
    supervisor = Client(system, "supervisor", "chaos-supervisor", stats, [])
    lost = duplicated = 0

    def count(messages, event, channels):
        nonlocal lost, duplicated
        seen = Counter(m["channel"] for m in messages if m["event"] == event)
        for channel in channels:
            lost += seen[channel] == 0
            duplicated += max(0, seen[channel] - 1)

    for kind, ref in done:
        if kind == "repair":
            count(everything(supervisor, "/messages", ticket_id=ref), CALLBACK_EVENT, ("staff", "sms"))
        elif kind in ("billing", "renovation"):
            account = hq.get(f"/units/{ref}/account").json()
            # a payment or an invoice made twice leaves a credit or a balance
            if (account["balance"], account["credit"], account["open_invoices"]) != ("0.00", "0.00", []):
                twice += 1
                stats[f"accounts not settled: {ref}"] = 1
            if kind == "billing":
                messages = everything(supervisor, "/messages", unit=ref)
                count(messages, "billing.invoice_issued", ("sms",))
                count(messages, "billing.invoice_paid", ("sms",))
            else:
                deposits = account["deposits"]
                if [d["status"] for d in deposits] != ["refunded"]:
                    twice += 1
                    stats[f"deposits not refunded once: {ref}"] = 1
        elif kind == "run":
            collection = hq.get("/billing/collection", site=RUN_SITE, period=ref).json()
            twice += collection["invoices"] != RUN_UNITS
    stats["objects created twice for one key"] = twice
    stats["messages lost"], stats["messages duplicated"] = lost, duplicated
    for headers, path, body, key, status, first in answers:
        again = requests.post(system.url + "/api/v1" + path, json=body,
                              headers={**headers, "Idempotency-Key": key}, timeout=30)
        if again.status_code != status or again.json() != first:
            stats["retries answered differently"] += 1
            print(f"chaos: POST {path} (key {key}) first {status} {json.dumps(first)[:300]}, "
                  f"again {again.status_code} {again.text[:300]}", file=sys.stderr, flush=True)
    stats["events left unpublished"] = unpublished(system)


def unpublished(system):
    total = 0
    for service in system.services:
        url = system.db_urls[service]
        if url.startswith("sqlite"):
            with sqlite3.connect(url.split("///", 1)[1]) as conn:
                total += conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        else:
            from sqlalchemy import create_engine, text
            engine = create_engine(url)
            with engine.connect() as conn:
                total += conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar()
            engine.dispose()
    return total


def prepare(system, units):
    hq = Client(system, "hq", "chaos-hq", Counter(), [], sites=("*",))
    manager = Client(system, "manager", "chaos-manager", Counter(), [], sites=(SITE, RUN_SITE))
    for site in (SITE, RUN_SITE):
        hq.post("/sites", site_payload(site))
        manager.post("/fee-schedules", {"site": site, **SCHEDULE})
    for n, unit in enumerate(units):
        hq.post("/units", unit_payload(unit, f"138{n:08d}"))
    for n in range(RUN_UNITS):
        hq.post("/units", unit_payload(f"{RUN_SITE}0101{n + 1:03d}", f"137{n:08d}"))


def kinds_of(flows, mix):
    weights = [int(w) for w in mix.split(":")]
    return [random.choices(KINDS, weights)[0] for _ in range(flows)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--units", type=int, default=20, help="units the repairs are on")
    parser.add_argument("--mix", default="5:2:2:1", help="repair:renovation:billing:run weights")
    parser.add_argument("--kill-every", type=float, default=12.0, help="mean seconds between kills")
    parser.add_argument("--outages", type=int, default=2)
    parser.add_argument("--outage-spacing", type=float, default=120.0)
    parser.add_argument("--broker", choices=("node", "link"), default="node")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no flow after this many minutes of driving (the rest counted)")
    parser.add_argument("--results", help="also write the figures to bench/results/<RESULTS>")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    # a stop asked for (SIGTERM) unwinds as an error would: processes, node and databases go
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stats, answers = Counter(), []
    for counted in (*BAD, "flows", "kills", "outages", "retries"):
        stats[counted] = 0
    launch = launcher_module()
    # the commit measured: the one checked out when the run starts
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="propdesk-chaos-"))
        if args.broker == "node":
            node = stack.enter_context(RabbitNode())
            amqp_uri, broker = node.amqp_uri, NodeRestarts(node)
        else:
            link = BrokerLink().restore()
            stack.callback(link.cut)
            vhost = stack.enter_context(Vhost("propdesk-chaos"))
            amqp_uri, broker = vhost.amqp_uri_at(link.server), LinkCuts(link)
        db_urls = None
        if args.db == "postgres":
            db_urls = {s: stack.enter_context(PostgresDatabase(f"chaos_{s}")).url for s in SERVICES}
        system = System(workdir, amqp_uri, db_urls=db_urls, secret=SECRET, rpc_timeout=5,
                        outbox_poll_seconds=1)
        for service in system.services:
            migrated(service, system.db_urls[service])
        # The launcher's supervisor runs the processes: System.kill/running see its children.
        launcher = launch.Supervisor(CONFIG, "127.0.0.1", workdir, env=system.env)
        system.processes = launcher.children
        starts, start = {"n": 0}, launcher.start

        def counted_start(*spec):
            starts["n"] += 1
            start(*spec)
        launcher.start = counted_start
        for service in system.services:
            launcher.start(service, service, system.ports[service])
        supervising = eventlet.spawn(launcher.supervise)
        stack.callback(lambda: (launcher.stop(), supervising.wait()))
        settled(system, launcher, timeout=120)
        units = [f"{SITE}01{n // 100 + 1:02d}{n % 100 + 1:03d}" for n in range(args.units)]
        prepare(system, units)
        system.chaos_units = units
        stop = eventlet.event.Event()
        chaos = [eventlet.spawn(kill_in_turn, launcher, stats, stop, args.kill_every),
                 eventlet.spawn(restart_broker, broker, stats, stop, args.outages,
                                args.outage_spacing)]
        started = time.monotonic()
        pool = eventlet.GreenPool(args.clients)
        kinds = kinds_of(args.flows, args.mix)
        until = started + (args.minutes * 60 if args.minutes else float("inf"))
        done = [r for r in pool.imap(lambda n: flow(system, kinds[n], n, stats, answers, until),
                                     range(args.flows)) if r]
        stop.send(True)
        chaos[0].kill()
        chaos[1].wait() if broker.is_down else chaos[1].kill()   # a restart under way ends
        if broker.is_down:
            broker.up()
        stats["seconds driving"] = round(time.monotonic() - started)
        stats["restarts by the launcher"] = starts["n"] - len(system.services)
        settled(system, launcher)
        audit(system, done, answers, stats)
    report = {"db": args.db, "broker": args.broker, "commit": commit, "flows asked": args.flows,
              **dict(sorted(stats.items()))}
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if args.results:
        write_results(args.results, text)
    else:
        print(text)
    return 1 if any(report[k] for k in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
