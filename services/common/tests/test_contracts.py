"""Payloads written in bulk are checked once per shape and come out as the schema dumps them."""
from datetime import date
from decimal import Decimal

import pytest

from services.common.contracts import dump_payload, dump_payloads


def invoice(n, amount=Decimal("120.50"), **changes):
    return {"invoice_id": f"M2026-11-00101010{n:02d}", "unit": f"00101010{n:02d}",
            "period": "2026-11", "kind": "monthly", "amount": amount, "due_date": date(2026, 11, 30),
            "items": [{"fee": "management", "amount": amount, "description": "物业管理费"}],
            "owner": {"name": "张三", "phone": "13812345678", "email": None, "person_id": f"p{n}"},
            "timezone": "Asia/Shanghai", "late_fee_daily_rate": Decimal("0.0005"), **changes}


def test_a_run_of_payloads_serialises_as_the_contract_dumps_each():
    many = [invoice(n) for n in range(20)] + [invoice(20, amount=Decimal("7.5")),
                                              invoice(21, owner=None, items=[])]
    version, payloads = dump_payloads("billing.invoice_issued", many)
    assert payloads == [dump_payload("billing.invoice_issued", data)[1] for data in many]
    assert payloads[20]["amount"] == "7.50"      # the schema's places, not the Decimal's


def test_a_payload_of_a_new_shape_that_breaks_the_contract_fails_the_batch():
    with pytest.raises(ValueError, match="breaks its contract"):
        dump_payloads("billing.invoice_issued", [invoice(1), invoice(2, amount=None)])
