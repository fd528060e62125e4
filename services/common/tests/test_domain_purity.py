"""Every service's domain is plain Python (ENGINEERING.md): importing it, alone in a fresh
interpreter, loads none of the infrastructure. Globbed, so a new service is covered too."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
INFRASTRUCTURE = ("nameko", "eventlet", "sqlalchemy", "marshmallow")
DOMAINS = sorted(ROOT.glob("services/*/domain.py"))

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))))
"""


def test_every_service_has_a_domain_to_check():
    assert {path.parent.name for path in DOMAINS} >= {"ticketing", "renovation", "billing"}


@pytest.mark.parametrize("path", DOMAINS, ids=lambda path: path.parent.name)
def test_a_domain_imports_no_infrastructure(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    loaded = subprocess.run([sys.executable, "-c", PROBE, module, *INFRASTRUCTURE], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"{module} loads {loaded.strip()}"
