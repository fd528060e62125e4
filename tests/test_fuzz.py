"""A short, seeded Schemathesis run against the live gateway (the whole system as processes),
so that an answer that breaks the OpenAPI document, a 5xx, an undocumented status or content
type fails `make test`; `make fuzz` runs the long one (tests/fuzz.py)."""
import pytest

from tests import fuzz
from tests.conftest import JWT_SECRET

pytestmark = pytest.mark.e2e

SEED = 20261201


def test_a_seeded_schemathesis_run_finds_nothing(system):
    assert fuzz.run(system.url, JWT_SECRET, seed=SEED, max_examples=5, max_time=120,
                    workers=1) == 0
