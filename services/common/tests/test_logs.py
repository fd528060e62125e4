"""An on-call engineer greps one request's correlation id and finds every line it caused."""
import io
import json
import logging
import threading

from services.common.logs import JsonFormatter, bind_correlation_id


def test_each_worker_logs_its_own_correlation_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("propdesk.test.logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    both_bound = threading.Barrier(2)

    def worker(correlation_id):
        bind_correlation_id(correlation_id)
        both_bound.wait()
        log.info("handled %s", correlation_id)

    workers = [threading.Thread(target=worker, args=(c,)) for c in ("flow-a", "flow-b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.removeHandler(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sorted((line["correlation_id"], line["msg"]) for line in lines) == [
        ("flow-a", "handled flow-a"), ("flow-b", "handled flow-b")]
