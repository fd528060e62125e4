"""`python -m bench.opening` keeps working (no bench runs in CI otherwise): a few calls of each
part it times, on both databases, each a real opening or statement, with its times."""
from bench import opening


def test_the_opening_bench_times_every_part_of_opening_a_repair(db_url):
    parts = opening.measure(db_url, calls=3, rounds=1)
    assert list(parts) == [
        "create_ticket (all of it)", "the unit's copy and limits", "the number",
        "building the repair (domain)", "the ticket's INSERT", "those three statements in one unit"]
    for rounds in parts.values():
        [(cpu, wall)] = rounds
        assert cpu >= 0 and wall > 0     # getrusage may count a few short calls as no time
