"""The answer book's half-yearly review (SPEC §8.5): frontdesk running on the real broker, its
clock moved from the day an entry was written (2026-05-31) to the day it is found overdue
(2026-12-01), when the desk reviews it and it is due again six months later."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.common import entrypoints
from services.common.errors import Forbidden, NotFound, ValidationFailed
from tests.inprocess import identity

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
SITE = "001"
AGENT = identity("agent", sub="agent-li")
NOW = [datetime(2026, 5, 31, 10, 0, tzinfo=SH)]


@pytest.fixture
def frontdesk(run_services, monkeypatch):
    monkeypatch.setattr(entrypoints, "utcnow", lambda: NOW[0])     # frontdesk's self.clock()
    return run_services("frontdesk")


def test_an_entry_written_on_31_may_is_overdue_on_1_december_until_it_is_reviewed(frontdesk):
    NOW[0] = datetime(2026, 5, 31, 10, 0, tzinfo=SH)
    with frontdesk.rpc(AGENT) as rpc:
        entry = rpc.frontdesk.create_answer(SITE, {
            "topic": "收费", "question": "物业费怎么交？", "answer": "可在前台缴纳物业费。"})
    assert entry["review_overdue"] is False and entry["reviewed_by"] is None

    NOW[0] = datetime(2026, 12, 1, 9, 0, tzinfo=SH)
    with frontdesk.rpc(AGENT) as rpc:
        [overdue] = rpc.frontdesk.list_answers(SITE, {"overdue": True})["items"]
        assert overdue["id"] == entry["id"] and overdue["review_overdue"] is True
        assert datetime.fromisoformat(overdue["review_due"]) == datetime(2026, 11, 30, 10, tzinfo=SH)

        # a technician does not write the answer book; another site's desk does not see it
        with frontdesk.rpc(identity("technician")) as other, pytest.raises(Forbidden):
            other.frontdesk.review_answer(entry["id"], {})
        with frontdesk.rpc(identity("agent", sites=["002"])) as other, pytest.raises(NotFound):
            other.frontdesk.review_answer(entry["id"], {})
        with pytest.raises(ValidationFailed) as bad:
            rpc.frontdesk.review_answer(entry["id"], {"answer": ""})
        assert "answer" in bad.value.extra["errors"]

        # reviewed: the answer brought up to date, due again on 1 June 2027
        reviewed = rpc.frontdesk.review_answer(
            entry["id"], {"answer": "可在前台或APP缴纳物业费。"})
        assert (reviewed["review_overdue"], reviewed["reviewed_by"]) == (False, "agent-li")
        assert datetime.fromisoformat(reviewed["review_due"]) == datetime(2027, 6, 1, 9, tzinfo=SH)
        assert (reviewed["question"], reviewed["answer"]) == ("物业费怎么交？", "可在前台或APP缴纳物业费。")
        assert rpc.frontdesk.list_answers(SITE, {"overdue": True})["items"] == []
        [kept] = rpc.frontdesk.list_answers(SITE, {"overdue": False})["items"]
        assert kept["answer"] == "可在前台或APP缴纳物业费。"

        # confirmed as it is, the next half-year: a review with nothing changed
        NOW[0] = datetime(2027, 6, 2, 9, 0, tzinfo=SH)
        assert rpc.frontdesk.get_answer(entry["id"])["review_overdue"] is True
        again = rpc.frontdesk.review_answer(entry["id"], {})
        assert again["review_overdue"] is False and again["answer"] == kept["answer"]
