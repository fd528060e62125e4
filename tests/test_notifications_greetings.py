"""Holiday greetings (SPEC §8.6), on SQLite and PostgreSQL without a broker: owners known from
`registry.unit_changed`, greeted on the first day of the Spring Festival, Mid-Autumn, New Year's
Day and National Day holidays from the working-day calendar — as entered, from the library, or
from the lunar calendar — once per phone and holiday however often the sweep is replayed, opt-outs
respected, quiet hours kept.

The 2027 Spring Festival entered here (from Fri 5 February) is TEST DATA shaped like 2026's, not
the State Council's arrangement."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common import calendar
from tests.test_notifications_delivery import recording_sms
from tests.test_notifications_outreach import OPS, body, messages

SH = ZoneInfo("Asia/Shanghai")
SPRING_2027 = [date(2027, 2, 5) + timedelta(days=n) for n in range(9)]
OWNERS = {   # unit: owner; 张三 owns two units (a person record each), 王五 opted out, 李四 has no phone
    "0011020301": {"name": "张三", "phone": "13812341234", "person_id": "p-zhang-1"},
    "0011020302": {"name": "张三", "phone": "13812341234", "person_id": "p-zhang-2"},
    "0011020303": {"name": "王五", "phone": "13900000005", "person_id": "p-wang"},
    "0011020304": {"name": "李四", "phone": None, "person_id": "p-li"},
    "0011020305": {"name": "赵六", "phone": "13900000006", "person_id": "p-zhao"},
}


@pytest.fixture
def owners(notifications):
    for unit, owner in OWNERS.items():
        notifications().on_unit_changed(body("registry.unit_changed", {
            "unit": unit, "change": "created", "owner": {**owner, "email": None},
            "timezone": "Asia/Shanghai"}))
    notifications().on_unit_changed(body("registry.unit_changed", {
        "unit": "0011020305", "change": "deactivated", "owner": OWNERS["0011020305"]}))
    notifications(identity=OPS).set_opt_out("p-wang", "sms")
    return notifications


def sweep(notifications, at, delivery=None):
    return notifications(identity=OPS, delivery=delivery).sweep({"as_of": at.isoformat()})


def greetings(db):
    return [m for m in messages(db) if m.event == "notifications.holiday_greeting"]


def test_the_2027_spring_festival_as_entered_greets_each_owner_once_after_quiet_hours(
        owners, notifications_db):
    calendar.enter(2027, 1, [{"name": "spring_festival", "first_day": SPRING_2027[0],
                              "days": SPRING_2027}], [date(2027, 1, 31), date(2027, 2, 20)])
    sms, delivery = recording_sms()
    assert sweep(owners, datetime(2027, 2, 4, 12, 0, tzinfo=SH), delivery)["greetings"] == 0
    early = sweep(owners, datetime(2027, 2, 5, 0, 30, tzinfo=SH), delivery)
    assert (early["greetings"], early["sent"], early["skipped"]) == (2, 0, 0)
    zhang, wang = sorted(greetings(notifications_db), key=lambda m: m.recipient)
    assert (zhang.recipient, zhang.status, zhang.template) == (
        "13812341234", "pending", "greeting_spring_festival")
    assert zhang.next_attempt_at == datetime(2027, 2, 5, 8, 0, tzinfo=SH)     # quiet until 08:00
    assert zhang.body.startswith("张三您好") and "新春快乐" in zhang.body
    assert (wang.recipient, wang.status) == ("13900000005", "skipped")
    morning = sweep(owners, datetime(2027, 2, 5, 8, 0, tzinfo=SH), delivery)
    assert (morning["greetings"], morning["sent"]) == (0, 1)
    for replay in (datetime(2027, 2, 5, 9, 0, tzinfo=SH), datetime(2027, 2, 5, 23, 0, tzinfo=SH)):
        assert sweep(owners, replay, delivery)["greetings"] == 0
    assert sms.sent == ["13812341234"]
    # the lunar New Year's Day itself (6 February) is not the holiday's first day this year
    assert sweep(owners, datetime(2027, 2, 6, 10, 0, tzinfo=SH), delivery)["greetings"] == 0


@pytest.mark.parametrize("first_day, template", [
    (date(2027, 2, 6), "greeting_spring_festival"),     # not entered: 正月初一 (lunar-python)
    (date(2027, 9, 15), "greeting_mid_autumn"),         # 八月十五
    (date(2027, 1, 1), "greeting_new_years_day"),
    (date(2026, 10, 1), "greeting_national_day"),       # from the library
    (date(2026, 9, 25), "greeting_mid_autumn"),         # the library's 2026 Mid-Autumn holiday
])
def test_a_year_not_entered_greets_on_the_librarys_or_the_festivals_day(
        owners, notifications_db, first_day, template):
    day_before = datetime.combine(first_day - timedelta(days=1), datetime.min.time(), SH)
    assert sweep(owners, day_before.replace(hour=10))["greetings"] == 0
    assert sweep(owners, day_before.replace(hour=10) + timedelta(days=1))["greetings"] == 2
    assert {m.template for m in greetings(notifications_db)} == {template}


def test_qingming_and_labour_day_bring_no_greeting(owners, notifications_db):
    for day in (date(2026, 4, 4), date(2026, 5, 1)):
        assert sweep(owners, datetime.combine(day, datetime.min.time(), SH).replace(hour=10))[
            "greetings"] == 0
