// Words of the console: Chinese by default (the seeds' own words), English on the toggle.
const LANG_KEY = "propdesk.console.lang";

const zh = {
  brand: "前台工作台",
  "nav.handover": "交接班", "nav.intake": "受理登记", "nav.callbacks": "回访", "nav.overdue": "超时",
  "nav.kpis": "月度指标", signout: "退出",
  "signin.title": "登录", "signin.hint": "粘贴访问令牌（Bearer token）：由运维用 propdesk-token 签发，或由贵司统一身份系统签发。",
  "signin.token": "访问令牌", "signin.submit": "登录", "signin.bad": "这不是一个有效的令牌",
  "signin.expired": "登录已失效，请重新登录", "signin.as": "当前用户",
  site: "项目", sites: "项目", role: "角色", "all": "全部", kind: "类别", status: "状态",
  code: "单号", unit: "房号", description: "内容", "next_deadline": "下一时限", assignee: "处理人",
  first_contact_owner: "首问责任人", refresh: "刷新", "auto_refresh": "每 {s} 秒自动刷新，上次 {at}",
  "handover.title": "交接班：未结案件（最紧急在前）", "handover.empty": "没有未结案件",
  "handover.truncated": "只显示前 {n} 条",
  "badge.breached": "已超时", "badge.soon": "即将到期", "badge.ok": "正常", "badge.none": "无时限",
  "left": "剩 {d}", "over": "超 {d}", "breached_before": "曾超时 {n} 次",
  "intake.title": "受理登记", "intake.submit": "登记", "intake.lookup": "查询",
  "intake.owner": "业主 {name}，电话 {phone}", "intake.unit_hint": "10 位房号，如 0010101001；公共区域可不填",
  "intake.received_at_hint": "补录时填写实际接报时间（不填为现在）", "intake.created": "已登记 {code}",
  "intake.reporter": "来电/来访人（不填则为业主）", "intake.reporter_name": "姓名", "intake.reporter_phone": "电话",
  "field.channel": "渠道", "field.received_at": "接报时间", "field.scope": "范围", "field.priority": "优先级",
  "field.appointment": "预约时间", "field.start": "开始", "field.end": "结束", "field.important": "重要报修（一个月内二次回访）",
  "field.fee": "报价（元）", "field.severity": "等级", "field.category": "投诉类型", "field.complainants": "投诉人数",
  "field.requested_deadline": "投诉人要求的期限（C 级）", "field.reply_by": "约定答复时间",
  "ticket.title": "案件", "ticket.deadlines": "时限", "ticket.breaches": "超时记录", "ticket.history": "处理经过",
  "ticket.callback": "回访记录", "ticket.second_callback": "二次回访", "ticket.actions": "可办理",
  "ticket.no_actions": "当前角色在此状态下无可办理事项", "ticket.result": "完工情况", "ticket.reporter": "报告人",
  "ticket.received_at": "接报", "ticket.late_entry": "补录超 2 小时", "ticket.met": "已完成 {at}",
  "ticket.due": "期限", "ticket.none": "无", "ticket.detected": "发现于 {at}", "ticket.done": "已办理：{action}",
  "ticket.back": "返回交接班", "ticket.escalated": "已升级", "ticket.messages": "已发通知",
  "cb.title": "回访工作单（按到期时间）", "cb.empty": "没有待回访的案件", "cb.due": "回访期限",
  "cb.record": "回访", "cb.reached": "是否联系上", "cb.yes": "已联系上", "cb.no": "未联系上",
  "cb.satisfaction": "满意度", "cb.comment": "备注", "cb.submit": "保存回访", "cb.saved": "已记录回访 {code}",
  "overdue.title": "超时清单", "overdue.empty": "没有超时案件",
  "kpi.title": "月度指标", "kpi.month": "月份", "kpi.csv": "下载 CSV", "kpi.received": "本月受理",
  "kpi.trend": "近六个月：及时率、回访率、满意率", "kpi.breaches": "本月超时（按时限）",
  "kpi.breaches_none": "本月没有超时", "kpi.partial": "（只统计了前 {n} 条案件）", "kpi.target": "目标 {t}",
  "kpi.households": "户数", "kpi.finished": "已完成",
  submit: "提交", cancel: "取消", "error.title": "出错了", "error.network": "连不上服务器：{detail}",
  "error.fields": "请检查标出的栏目", loading: "加载中…", yes: "是", no: "否",
};

const en = {
  brand: "Front desk",
  "nav.handover": "Handover", "nav.intake": "Intake", "nav.callbacks": "Callbacks", "nav.overdue": "Overdue",
  "nav.kpis": "KPIs", signout: "Sign out",
  "signin.title": "Sign in", "signin.hint": "Paste a bearer token (minted by ops with propdesk-token, or issued by your identity provider).",
  "signin.token": "Bearer token", "signin.submit": "Sign in", "signin.bad": "This is not a valid token",
  "signin.expired": "Your session has ended; sign in again", "signin.as": "Signed in as",
  site: "Site", sites: "Sites", role: "Role", all: "All", kind: "Kind", status: "Status",
  code: "Code", unit: "Unit", description: "Description", next_deadline: "Next deadline", assignee: "Assignee",
  first_contact_owner: "First contact", refresh: "Refresh", auto_refresh: "Refreshes every {s} s, last {at}",
  "handover.title": "Handover: open cases, most urgent first", "handover.empty": "No open cases",
  "handover.truncated": "Showing the first {n}",
  "badge.breached": "Breached", "badge.soon": "Due soon", "badge.ok": "On time", "badge.none": "No deadline",
  left: "{d} left", over: "{d} over", breached_before: "breached {n}×",
  "intake.title": "Intake", "intake.submit": "Register", "intake.lookup": "Look up",
  "intake.owner": "Owner {name}, phone {phone}", "intake.unit_hint": "10 digits, e.g. 0010101001; empty for common areas",
  "intake.received_at_hint": "For a late entry, when it was received (empty: now)", "intake.created": "Registered {code}",
  "intake.reporter": "Caller (empty: the owner)", "intake.reporter_name": "Name", "intake.reporter_phone": "Phone",
  "field.channel": "Channel", "field.received_at": "Received at", "field.scope": "Scope", "field.priority": "Priority",
  "field.appointment": "Appointment", "field.start": "From", "field.end": "Until", "field.important": "Important (second callback within a month)",
  "field.fee": "Quoted fee (CNY)", "field.severity": "Severity", "field.category": "Category", "field.complainants": "Complainants",
  "field.requested_deadline": "Complainant's own deadline (C)", "field.reply_by": "Agreed reply time",
  "ticket.title": "Case", "ticket.deadlines": "Deadlines", "ticket.breaches": "Breaches", "ticket.history": "History",
  "ticket.callback": "Callback", "ticket.second_callback": "Second callback", "ticket.actions": "Actions",
  "ticket.no_actions": "No action for your role in this state", "ticket.result": "Completion", "ticket.reporter": "Reporter",
  "ticket.received_at": "Received", "ticket.late_entry": "entered over 2 h late", "ticket.met": "met {at}",
  "ticket.due": "Due", "ticket.none": "none", "ticket.detected": "detected {at}", "ticket.done": "Done: {action}",
  "ticket.back": "Back to handover", "ticket.escalated": "escalated", "ticket.messages": "Messages sent",
  "cb.title": "Callback worklist (by due time)", "cb.empty": "Nothing awaits a callback", "cb.due": "Callback due",
  "cb.record": "Callback", "cb.reached": "Reached?", "cb.yes": "Reached", "cb.no": "Not reached",
  "cb.satisfaction": "Satisfaction", "cb.comment": "Comment", "cb.submit": "Save callback", "cb.saved": "Callback recorded for {code}",
  "overdue.title": "Overdue", "overdue.empty": "Nothing is overdue",
  "kpi.title": "Monthly KPIs", "kpi.month": "Month", "kpi.csv": "Download CSV", "kpi.received": "Received this month",
  "kpi.trend": "Last six months: timeliness, callback and satisfaction rates", "kpi.breaches": "Breaches this month, by deadline",
  "kpi.breaches_none": "No breach this month", "kpi.partial": "(counted over the first {n} cases)", "kpi.target": "target {t}",
  "kpi.households": "Households", "kpi.finished": "Finished",
  submit: "Submit", cancel: "Cancel", "error.title": "Error", "error.network": "Cannot reach the server: {detail}",
  "error.fields": "Check the fields marked", loading: "Loading…", yes: "yes", no: "no",
};

// The API's names (SPEC §7), in words.
const names = {
  zh: {
    kind: { repair: "报修", complaint: "投诉", inquiry: "咨询", suggestion: "建议" },
    status: { received: "已受理", dispatched: "已派工", on_site: "已到场", completed: "已完工", closed: "已结案",
      cancelled: "已取消", routed: "已转交", resolved: "已处理", replied: "已回复", invalid: "无效投诉",
      forwarded: "已转交", decided: "已决定" },
    deadline: { acknowledge: "书面确认", route: "转交", answer: "答复", resolve: "处理完毕", reply: "回复",
      dispatch: "派工", forward: "转交处理人", callback: "回访", revisit: "再次回访", second_callback: "二次回访" },
    action: { dispatch: "派工", reschedule: "改约", arrive: "到场", complete: "完工", "record-callback": "回访",
      close: "结案", cancel: "取消", acknowledge: "书面确认", route: "转交主管", assess: "有效性判定",
      answer: "答复", "request-extension": "申请延期", "approve-extension": "批准延期", resolve: "处理完毕",
      reply: "回复", forward: "转交处理人", decide: "决定", reopen: "返修", receive: "受理" },
    channel: { front_desk: "前台", phone: "电话", web: "网站", app: "App", email: "电子邮件", letter: "信函" },
    scope: { common_area: "共用部位设施", in_home: "家居特约（有偿）" },
    priority: { normal: "一般", urgent: "紧急" },
    severity: { A: "A 重大", B: "B 一般", C: "C 轻微" },
    category: { KF: "KF 客服", ZX: "ZX 秩序/安全", GC: "GC 工程", BJ: "BJ 保洁", YY: "YY 园林", QT: "QT 其他" },
    role: { resident: "业户", agent: "前台客服", technician: "维修技工", supervisor: "主管",
      quality_supervisor: "品质主管", manager: "项目经理", hq: "总部", legal: "法务", ops_admin: "运维" },
    kpi: { timeliness_rate: "及时率", repair_timeliness_rate: "报修及时率", complaint_timeliness_rate: "投诉及时率",
      callback_rate: "回访率", satisfaction_rate: "满意率", average_satisfaction: "平均满意度",
      complaint_rate: "投诉率", valid_complaint_rate: "有效投诉率", rework_rate: "返修率",
      inquiry_reply_rate: "咨询答复率" },
  },
  en: {
    kind: { repair: "Repair", complaint: "Complaint", inquiry: "Inquiry", suggestion: "Suggestion" },
    status: { received: "received", dispatched: "dispatched", on_site: "on site", completed: "completed", closed: "closed",
      cancelled: "cancelled", routed: "routed", resolved: "resolved", replied: "replied", invalid: "invalid",
      forwarded: "forwarded", decided: "decided" },
    deadline: { acknowledge: "acknowledge", route: "route", answer: "answer", resolve: "resolve", reply: "reply",
      dispatch: "dispatch", forward: "forward", callback: "callback", revisit: "revisit", second_callback: "second callback" },
    action: { dispatch: "Dispatch", reschedule: "Reschedule", arrive: "Arrived", complete: "Complete",
      "record-callback": "Callback", close: "Close", cancel: "Cancel", acknowledge: "Acknowledge", route: "Route",
      assess: "Assess", answer: "Answer", "request-extension": "Request extension", "approve-extension": "Approve extension",
      resolve: "Resolve", reply: "Reply", forward: "Forward", decide: "Decide", reopen: "Reopen", receive: "Received" },
    channel: { front_desk: "front desk", phone: "phone", web: "web", app: "app", email: "email", letter: "letter" },
    scope: { common_area: "common area", in_home: "in home (paid)" },
    priority: { normal: "normal", urgent: "urgent" },
    severity: { A: "A major", B: "B general", C: "C minor" },
    category: { KF: "KF customer service", ZX: "ZX order/security", GC: "GC engineering", BJ: "BJ cleaning",
      YY: "YY landscaping", QT: "QT other" },
    role: { resident: "resident", agent: "agent", technician: "technician", supervisor: "supervisor",
      quality_supervisor: "quality supervisor", manager: "manager", hq: "head office", legal: "legal", ops_admin: "ops" },
    kpi: { timeliness_rate: "Timeliness", repair_timeliness_rate: "Repair timeliness", complaint_timeliness_rate: "Complaint timeliness",
      callback_rate: "Callback rate", satisfaction_rate: "Satisfaction rate", average_satisfaction: "Average satisfaction",
      complaint_rate: "Complaint rate", valid_complaint_rate: "Valid-complaint rate", rework_rate: "Rework rate",
      inquiry_reply_rate: "Inquiry reply rate" },
  },
};

export let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
export function setLang(value) { lang = value; localStorage.setItem(LANG_KEY, value); }
export const locale = () => (lang === "en" ? "en-GB" : "zh-CN");

export function t(key, vars = {}) {
  const text = (lang === "en" ? en : zh)[key] ?? zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

// The word for one of the API's names, e.g. name("kind", "repair") → 报修; unknown names as sent.
export function name(group, value) {
  if (value === null || value === undefined) return "";
  return names[lang][group]?.[value] ?? value;
}

export const KIND_NAMES = Object.keys(names.zh.kind);
export const STATUSES = {
  repair: ["received", "dispatched", "on_site", "completed"],
  complaint: ["received", "routed", "resolved", "replied"],
  inquiry: ["received"],
  suggestion: ["received", "forwarded", "decided"],
};
