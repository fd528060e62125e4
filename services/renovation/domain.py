"""Renovation rules (SPEC §3, seed 001 ch.4 §6 and ch.5 §4), plain Python: what an application
must bring, the review table, the status machine, fees, permit and passes, violations and the
deadlines with their breaches. No Nameko, no SQL; `now` is always passed in."""
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.common import calendar
from services.common.casefile import CaseFile
from services.common.clock import as_utc
from services.common.errors import Conflict
from services.common.roles import DESK, INSPECTORS, MANAGERS, PATROLLERS, RESIDENT
from services.common.workflow import Transition, Workflow

# -- the review table (001 ch.4 §6: nine kinds of work that are not registered) -------------
NEVER = "never"
ALLOWED = "allowed"

# work item -> NEVER, or the approval it needs
WORK_ITEM_RULES = {
    "structural_change": "design_institute_approval",   # 主体/承重结构
    "wet_room_conversion": NEVER,                        # 无防水要求房间/阳台改卫生间、厨房
    "load_bearing_opening": NEVER,                       # 扩大承重墙门窗、拆阳台墙体
    "energy_saving_damage": NEVER,                       # 损坏节能设施
    "new_structure": "planning_approval",                # 搭建建筑物、构筑物
    "facade_change": "planning_approval",                # 改变外立面、外墙开门窗
    "heating_pipe_change": "heating_company_approval",   # 拆改供热管道
    "gas_pipe_change": "gas_company_approval",           # 拆改燃气管道
    "unsafe_other": NEVER,                               # 其它影响结构和使用安全
}
ORDINARY_WORK_ITEMS = (
    "flooring", "painting", "electrical", "plumbing", "carpentry", "tiling", "ceiling",
    "doors_windows", "kitchen_bathroom_fittings", "waterproofing", "air_conditioning",
)
WORK_ITEMS = (*WORK_ITEM_RULES, *ORDINARY_WORK_ITEMS)
APPROVALS = tuple(sorted({rule for rule in WORK_ITEM_RULES.values() if rule != NEVER}))

# -- documents checked the day they arrive (001 ch.4 §6 具体要求 1) ----------------------------
REQUIRED_DOCUMENTS = {
    "application_form": "装修申请登记表",
    "property_certificate": "物业所有权证明",
    "applicant_id": "申请人身份证",
    "design_plan": "装修设计方案（图纸）",
    "contractor_licence": "装修施工单位资质/营业执照",
    "worker_ids": "装修人员相片及身份证",
}
# Changes to water, power or gas need their drawings too (原有建筑、水电气改动设计).
UTILITY_ITEMS = ("electrical", "plumbing", "gas_pipe_change", "heating_pipe_change")
UTILITY_DRAWINGS = "utility_drawings"
DOCUMENTS = {**REQUIRED_DOCUMENTS, UTILITY_DRAWINGS: "水电气改动设计",
             "owner_consent_letter": "业主书面同意书", "commitment_letter": "装修承诺书",
             "insurance": "装修工程一切险（商铺）"}

STATUSES = ("submitted", "approved", "rejected", "permitted", "inspection_requested",
            "rectifying", "passed", "closed")

# The front desk, or a resident for their own unit (as owner, or as tenant with the owner's
# consent, SPEC §1): which units are theirs is registry's, checked by the gateway and by require_visible.
CREATORS = (*DESK, RESIDENT)

# The deadlines whose breach is alerted (renovation.sla_breached); `rectify` of a violation is
# escalated to the authorities instead (001 ch.5 §4 1.5.2 拒不整改,报请政府相关主管部门), that of
# a failed inspection is alerted like these.
ALERTED_DEADLINES = ("review", "inspection", "refund")


class InvalidField(ValueError):
    """Input the schema could not judge alone (it depends on `now`); answered as 422 on `field`."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RenovationPolicy:
    """Defaults of SPEC §3; a site may tighten them. Frozen onto each application."""
    review_working_days: int = 2        # 二个工作日内审核完毕
    inspection_days: int = 3            # 提出验收时,应在三天内组织验收
    refund_working_days: int = 3        # 验收合格后 3 个工作日内退还保证金
    fees_due_days: int = 7              # fees invoiced on approval are due a week later

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FeeTable:
    """The renovation fees of a site, as billing's fee schedule in force states them when an
    application is approved (SPEC §3: never constants here)."""
    management_per_m2: Decimal       # 装修管理服务费, per m² of charge area
    deposit: Decimal                 # 装修保证金
    debris_removal: Decimal          # 垃圾清运费, only if asked

    def lines(self, area_m2, debris_removal):
        cents = Decimal("0.01")
        lines = [
            {"fee": "renovation_management",
             "amount": (self.management_per_m2 * Decimal(area_m2)).quantize(cents),
             "description": f"装修管理服务费 {self.management_per_m2}/m² × {area_m2} m²"},
            {"fee": "renovation_deposit", "amount": self.deposit.quantize(cents),
             "description": "装修保证金（验收合格后退还）"},
        ]
        if debris_removal:
            lines.append({"fee": "debris_removal", "amount": self.debris_removal.quantize(cents),
                          "description": "装修垃圾清运费"})
        return lines


def missing_documents(documents, work_items):
    """Codes of the documents the application still lacks, in the seed's order."""
    needed = list(REQUIRED_DOCUMENTS)
    if any(item in UTILITY_ITEMS for item in work_items):
        needed.append(UTILITY_DRAWINGS)
    return [code for code in needed if code not in documents]


def rule_violations(work_items, approvals):
    """Every work item the review table forbids: never allowed, or lacking its approval."""
    violations = []
    for item in work_items:
        rule = WORK_ITEM_RULES.get(item, ALLOWED)
        if rule == NEVER or (rule != ALLOWED and rule not in approvals):
            violations.append(item)
    return list(dict.fromkeys(violations))


UNDER_WORK = ("permitted", "rectifying", "inspection_requested")

# A site manager approves renovations (SPEC §7), and head office may do whatever a manager may.
WORKFLOW = Workflow(
    "renovation",
    Transition("review", ("submitted",), None, MANAGERS),
    Transition("sign", ("approved",), None, DESK,
               guard=lambda renovation: renovation.agreement_signed_at is None),
    Transition("patrol", UNDER_WORK, None, PATROLLERS),
    Transition("violation", UNDER_WORK, None, PATROLLERS),
    Transition("rectified", UNDER_WORK, None, PATROLLERS,
               guard=lambda renovation: bool(renovation.open_violations())),
    Transition("request-inspection", ("permitted", "rectifying"), "inspection_requested", DESK),
    Transition("inspect", ("inspection_requested",), None, INSPECTORS),
    Transition("close", ("passed",), "closed", DESK),
)


@dataclass
class Renovation(CaseFile):
    id: str
    site: str
    unit: str
    timezone: str
    applicant: dict
    contractor: dict
    workers: list
    planned_start: date
    planned_end: date
    work_items: list
    documents: list
    approvals: list
    debris_removal: bool
    area_m2: str
    submitted_at: datetime
    created_at: datetime
    created_by: str
    status: str = "submitted"
    rule_violations: list = field(default_factory=list)
    rejection_reasons: list = field(default_factory=list)
    fees: list = field(default_factory=list)              # [{fee, amount, description}]
    paid_invoices: dict = field(default_factory=dict)     # invoice id -> amount paid
    agreement_signed_at: datetime | None = None
    permit: dict | None = None    # {number, valid_from, valid_until, issued_at, revoked_at}
    passes: list = field(default_factory=list)  # [{number, holder, id_number, valid_from, valid_until, revoked_at}]
    patrols: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    inspections: list = field(default_factory=list)
    deductions: str = "0.00"
    refund: dict | None = None    # {deductions, refund_by, closed_at, reference}
    policy: dict = field(default_factory=dict)
    deadlines: dict = field(default_factory=dict)       # name -> ISO instant
    deadlines_met: dict = field(default_factory=dict)   # name -> ISO instant it was met
    breaches: list = field(default_factory=list)
    history: list = field(default_factory=list)
    next_due_at: datetime | None = None
    events: list = field(default_factory=list, repr=False, compare=False)

    # -- submission ----------------------------------------------------------------------

    @classmethod
    def submit(cls, *, id, site, unit, timezone, area_m2, data, now, by, role,
               policy: RenovationPolicy):
        """A checked application: documents complete and dates sane (the schema and
        `missing_documents` say so before); the review table is applied at once."""
        submitted_at = data.get("submitted_at") or now
        if submitted_at > now:
            raise InvalidField("submitted_at", "submitted_at is in the future")
        renovation = cls(
            id=id, site=site, unit=unit, timezone=timezone, area_m2=str(area_m2),
            applicant=data["applicant"], contractor=data["contractor"], workers=data["workers"],
            planned_start=data["planned"]["start"], planned_end=data["planned"]["end"],
            work_items=list(data["work_items"]), documents=list(data["documents"]),
            approvals=list(data["approvals"]), debris_removal=data["debris_removal"],
            submitted_at=submitted_at, created_at=now, created_by=by,
            policy=_as_dict(policy),
        )
        renovation.rule_violations = rule_violations(renovation.work_items, renovation.approvals)
        renovation._set_deadline("review", calendar.add_working_days(
            submitted_at, policy.review_working_days, timezone))
        renovation._record(now, by, role, "submit", data={
            "submitted_at": submitted_at.isoformat(), "rule_violations": renovation.rule_violations})
        renovation.refresh_due()
        return renovation

    # -- what may happen next ------------------------------------------------------------

    workflow = WORKFLOW

    @property
    def renovation_policy(self):
        return RenovationPolicy.from_dict(self.policy)

    # -- review and fees (001 ch.4 §6 审核; ch.5 §4 1.3 办理开工手续) ------------------------

    def _review(self, data, *, now, by, role):
        decision = data["decision"]
        if decision == "approved" and self.rule_violations:
            raise Conflict(
                f"cannot approve: work items break the review rules: {', '.join(self.rule_violations)}",
                {"rule_violations": self.rule_violations, "allowed_decisions": ["rejected"]})
        self._meet("review", now)
        if decision == "approved":
            self.status = "approved"
            self.fees = [{**line, "amount": str(line["amount"])}
                         for line in data["fee_table"].lines(self.area_m2, self.debris_removal)]
            due = calendar.add_days(now, self.renovation_policy.fees_due_days, self.timezone)
            self.events.append(("renovation.fees_due", {
                "renovation_id": self.id, "unit": self.unit, "items": self.fees,
                "due_date": due.astimezone(calendar.zone(self.timezone)).date(),
                "applicant": self._contact()}))
        else:
            self.status = "rejected"
            self.rejection_reasons = [*self.rule_violations,
                                      *([data["reason"]] if data.get("reason") else [])]
        self._record(now, by, role, "review", note=data.get("reason"),
                     data={"decision": decision, "rejection_reasons": self.rejection_reasons})
        self.events.append(("renovation.decided", {
            "renovation_id": self.id, "unit": self.unit, "decision": decision,
            "rejection_reasons": self.rejection_reasons, "applicant": self._contact()}))

    def _sign(self, data, *, now, by, role):
        """The service agreement (装修管理服务协议); the permit waits for it and the fees."""
        self.agreement_signed_at = now
        self._record(now, by, role, "sign", note=data.get("note"))
        self._issue_when_ready(now)

    @property
    def fees_total(self):
        return sum((Decimal(line["amount"]) for line in self.fees), Decimal("0.00"))

    @property
    def fees_paid(self):
        return bool(self.fees) and sum(
            (Decimal(a) for a in self.paid_invoices.values()), Decimal("0.00")) >= self.fees_total

    def record_payment(self, invoice_id, amount, *, now):
        """An invoice billed for this application was paid (billing.invoice_paid). Once the
        invoices cover every fee line, and the agreement is signed, the permit is issued."""
        if invoice_id in self.paid_invoices:
            return
        self.paid_invoices = {**self.paid_invoices, invoice_id: str(amount)}
        self._record(now, "billing", "system", "fees-paid",
                     data={"invoice_id": invoice_id, "amount": str(amount)})
        self._issue_when_ready(now)
        self.refresh_due()

    def _issue_when_ready(self, now):
        """施工许可证 and 施工人员出入证 (001 ch.5 §4 1.3), valid for the planned dates."""
        if self.status != "approved" or self.agreement_signed_at is None or not self.fees_paid:
            return
        number = permit_number(self.unit, self.id)
        valid = {"valid_from": self.planned_start.isoformat(),
                 "valid_until": self.planned_end.isoformat()}
        self.permit = {"number": number, **valid, "issued_at": now.isoformat(), "revoked_at": None}
        self.passes = [{"number": f"{number}-{i:02d}", "holder": worker["name"],
                        "unit": self.unit, **valid, "revoked_at": None}
                       for i, worker in enumerate(self.workers, start=1)]
        self.status = "permitted"
        self._record(now, "system", "system", "issue-permit",
                     data={"permit": number, "passes": [p["number"] for p in self.passes]})
        self.events.append(("renovation.permit_issued", {
            "renovation_id": self.id, "unit": self.unit, "permit_number": number,
            "valid_from": self.planned_start, "valid_until": self.planned_end,
            "passes": [{"number": p["number"], "holder": p["holder"]} for p in self.passes],
            "applicant": self._contact()}))

    # -- construction: patrols and violations (1.4 巡查, 1.5 违章处理) -------------------------

    def _patrol(self, data, *, now, by, role):
        record = {"at": now.isoformat(), "by": by, "ok": data["ok"], "note": data["note"]}
        self.patrols = [*self.patrols, record]
        self._record(now, by, role, "patrol", note=data["note"], data={"ok": data["ok"]})

    def _violation(self, data, *, now, by, role):
        rectify_by = as_utc(data["rectify_by"])
        if rectify_by <= now:
            raise InvalidField("rectify_by", "rectify_by must be in the future")
        notice = {"number": len(self.violations) + 1, "description": data["description"],
                  "noticed_at": now.isoformat(), "by": by,
                  "rectify_by": rectify_by.isoformat(),
                  "deduction": str(data.get("deduction") or Decimal("0.00")),
                  "rectified_at": None, "escalated_at": None}
        self.violations = [*self.violations, notice]
        self.deductions = str(sum((Decimal(v["deduction"]) for v in self.violations), Decimal("0.00")))
        self._sync_rectify_deadline(now)
        self._record(now, by, role, "violation", note=data["description"],
                     data={"number": notice["number"], "rectify_by": notice["rectify_by"],
                           "deduction": notice["deduction"]})

    def _rectified(self, data, *, now, by, role):
        numbers = data.get("numbers") or [v["number"] for v in self.open_violations()]
        self.violations = [{**v, "rectified_at": now.isoformat()}
                           if v["number"] in numbers and v["rectified_at"] is None else v
                           for v in self.violations]
        self._sync_rectify_deadline(now)
        self._record(now, by, role, "rectified", note=data.get("note"), data={"numbers": numbers})

    def open_violations(self):
        return [v for v in self.violations if v["rectified_at"] is None]

    def _sync_rectify_deadline(self, now):
        """`rectify` is the earliest deadline among open notices and a failed inspection not
        re-inspected yet; met when none is open."""
        dues = [v["rectify_by"] for v in self.open_violations()]
        if self.pending_rectification():
            dues.append(self.inspections[-1]["rectify_by"])
        if dues:
            self.deadlines = {**self.deadlines, "rectify": min(dues)}
            self.deadlines_met = {k: v for k, v in self.deadlines_met.items() if k != "rectify"}
        else:
            self._meet("rectify", now)

    def overdue_violations(self, as_of):
        """Open notices past their deadline and not yet reported to the authorities."""
        return [v for v in self.open_violations()
                if v["escalated_at"] is None and datetime.fromisoformat(v["rectify_by"]) <= as_of]

    def escalate(self, number, *, now):
        self.violations = [{**v, "escalated_at": now.isoformat()} if v["number"] == number else v
                           for v in self.violations]
        self._record(now, "system", "system", "escalate",
                     note="not rectified in time: reported to the authorities",
                     data={"number": number})

    # -- completion (装修验收) -------------------------------------------------------------

    def _request_inspection(self, data, *, now, by, role):
        due = calendar.add_days(now, self.renovation_policy.inspection_days, self.timezone)
        self.deadlines = {**self.deadlines, "inspection": as_utc(due).isoformat()}
        self.deadlines_met = {k: v for k, v in self.deadlines_met.items() if k != "inspection"}
        self._record(now, by, role, "request-inspection", note=data.get("note"))

    def _inspect(self, data, *, now, by, role):
        rectify_by = None
        if not data["passed"]:
            rectify_by = as_utc(data["rectify_by"])
            if rectify_by <= now:
                raise InvalidField("rectify_by", "rectify_by must be in the future")
        self._meet("inspection", now)
        record = {"at": now.isoformat(), "by": by, "passed": data["passed"], "notes": data["notes"],
                  "rectify_by": rectify_by and rectify_by.isoformat()}
        self.inspections = [*self.inspections, record]
        self._sync_rectify_deadline(now)
        self._record(now, by, role, "inspect", note=data["notes"],
                     data={"passed": data["passed"], "rectify_by": record["rectify_by"]})
        if not data["passed"]:
            self.status = "rectifying"     # 书面整改意见 with its deadline, then re-inspection
            return
        self.status = "passed"
        revoked = now.isoformat()
        self.permit = {**self.permit, "revoked_at": revoked}
        self.passes = [{**p, "revoked_at": revoked} for p in self.passes]
        refund_by = calendar.add_working_days(now, self.renovation_policy.refund_working_days,
                                              self.timezone)
        self.refund = {"deductions": self.deductions, "refund_by": refund_by.isoformat(),
                       "closed_at": None, "reference": None}
        self._set_deadline("refund", refund_by)
        self.events.append(("renovation.deposit_refund_due", {
            "renovation_id": self.id, "unit": self.unit, "deductions": Decimal(self.deductions),
            "refund_by": refund_by}))

    def pending_rectification(self):
        """The last inspection failed and none has been held since: its `rectify_by` runs."""
        return bool(self.inspections) and not self.inspections[-1]["passed"]

    def _close(self, data, *, now, by, role):
        """The deposit was refunded outside the system (file archived by hand)."""
        self._archive(data.get("reference"), now=now, by=by, role=role)

    def deposit_refunded(self, amount, *, now):
        """billing refunded the deposit (billing.deposit_refunded): the file is archived by
        itself. False for a file not waiting for its refund (closed by hand already)."""
        if self.status != "passed":
            return False
        self._archive(f"billing refunded {amount}", now=now, by="billing", role="system")
        self.status = "closed"
        self.refresh_due()
        return True

    def _archive(self, reference, *, now, by, role):
        self._meet("refund", now)
        self.refund = {**(self.refund or {}), "closed_at": now.isoformat(), "reference": reference}
        self._record(now, by, role, "close", note=reference)

    # -- breaches (the sweep) ------------------------------------------------------------

    def due_breaches(self, as_of):
        """(deadline, due_at) of every alerted deadline unmet by `as_of` and not yet breached."""
        breached = {b["deadline"] for b in self.breaches}
        if self.status in ("rejected", "closed"):
            return []
        return [(name, due) for name, due in self._alerted_deadlines().items()
                if name not in breached and due <= as_of]

    def _alerted_deadlines(self):
        """{name: due} of the open deadlines whose breach is alerted: `rectify` only when a
        failed inspection set it (an unrectified violation is escalated instead)."""
        alerted = {n: d for n, d in self.open_deadlines().items() if n in ALERTED_DEADLINES}
        if self.pending_rectification():
            alerted["rectify"] = datetime.fromisoformat(self.inspections[-1]["rectify_by"])
        return alerted

    def record_breach(self, deadline, due_at, *, now):
        self.breaches = [*self.breaches, {"deadline": deadline, "due_at": due_at.isoformat(),
                                          "detected_at": now.isoformat()}]
        self.events.append(("renovation.sla_breached", {
            "subject": "renovation", "subject_id": self.id, "code": self.id, "kind": "renovation",
            "deadline": deadline, "due_at": due_at, "detected_at": now, "unit": self.unit,
            "first_contact_owner": self.created_by, "escalate_to": ["manager", "hq"],
            "timezone": self.timezone}))

    # -- bookkeeping ---------------------------------------------------------------------

    def refresh_due(self):
        """The earliest instant the sweep must look at this application again."""
        if self.status in ("rejected", "closed"):
            self.next_due_at = None
            return
        breached = {b["deadline"] for b in self.breaches}
        dues = [d for n, d in self._alerted_deadlines().items() if n not in breached]
        dues += [datetime.fromisoformat(v["rectify_by"]) for v in self.open_violations()
                 if v["escalated_at"] is None]
        self.next_due_at = min(dues, default=None)

    def _contact(self):
        return {"name": self.applicant.get("name"), "phone": self.applicant.get("phone")}


def permit_number(unit, renovation_id):
    """装修施工许可证 number: the unit and the application's id tail, unique per application."""
    return f"ZX{unit}-{renovation_id[-6:].upper()}"


def pass_status(entry, today):
    """valid, expired or revoked, as the gate reads it on `today` (the site's local date)."""
    if entry["revoked_at"]:
        return "revoked"
    if today > date.fromisoformat(entry["valid_until"]):
        return "expired"
    return "valid"


def _as_dict(policy):
    return {name: getattr(policy, name) for name in policy.__dataclass_fields__}
