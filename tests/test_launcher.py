"""The local launcher (`make run` / `make up`) restarts a service that dies on its own, with a
back-off, and keeps the others running; a stop asked for stops everything and restarts nothing."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.flows import eventually
from bench.harness import ROOT, migrated, sqlite_url

pytestmark = pytest.mark.integration

LAUNCH = os.path.join(ROOT, "deploy", "local", "launch.py")


def started_pids(log_path, name):
    with open(log_path) as log:
        return [int(pid) for pid in re.findall(rf"launch: {name} started \(pid (\d+)\)", log.read())]


def test_a_killed_service_is_started_again_and_a_stop_stops_everything(tmp_path, amqp_uri):
    logdir, stderr_path = tmp_path / "logs", tmp_path / "launch.err"
    env = dict(os.environ, PROPDESK_AMQP_URI=amqp_uri,
               REGISTRY_DB_URL=migrated("registry", sqlite_url(tmp_path / "registry.db")))
    with open(stderr_path, "w") as stderr:
        launcher = subprocess.Popen([sys.executable, LAUNCH, "--only", "registry",
                                     "--logdir", str(logdir)], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        [first] = eventually(lambda: started_pids(stderr_path, "registry"), what="registry started")
        time.sleep(1)
        os.kill(first, signal.SIGKILL)

        pids = eventually(lambda: started_pids(stderr_path, "registry"),
                          done=lambda pids: len(pids) == 2, what="registry restarted")
        assert pids[1] != first
        assert "registry exited unexpectedly with status -9; restarting in 1 s" in stderr_path.read_text()
        assert launcher.poll() is None

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pids[1], 0)
        assert len(started_pids(stderr_path, "registry")) == 2
    finally:
        if launcher.poll() is None:
            launcher.kill()
