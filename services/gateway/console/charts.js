// Charts drawn as SVG here: a line chart of rates by month and a bar chart of counts.
const NS = "http://www.w3.org/2000/svg";
export const COLORS = ["#0f5c8c", "#d9822b", "#2e8b57", "#8e44ad", "#c0392b"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// series: [{label, values: [0..1 | null]}], labels: month names. Rates from 0 to 100 %.
export function lineChart(series, labels, { title = "" } = {}) {
  const W = 560, H = 240, L = 44, R = 28, T = 16, B = 40;
  const x = (i) => L + (labels.length < 2 ? (W - L - R) / 2 : (i * (W - L - R)) / (labels.length - 1));
  const y = (v) => T + (1 - v) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, `${v * 100}%`));
  }
  labels.forEach((label, i) => svg.append(s("text", { x: x(i), y: H - B + 16, "text-anchor": "middle", class: "axis" }, label)));
  series.forEach((serie, k) => {
    const color = COLORS[k % COLORS.length];
    let d = "";
    serie.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += `${d && serie.values[i - 1] != null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d) svg.append(s("path", { d, fill: "none", stroke: color, "stroke-width": 2.5 }));
    serie.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const dot = s("circle", { cx: x(i), cy: y(v), r: 4, fill: color });
      dot.append(s("title", {}, `${serie.label} ${labels[i]}: ${(v * 100).toFixed(1)}%`));
      svg.append(dot);
    });
  });
  const legend = s("g", { class: "legend" });
  series.forEach((serie, k) => {
    const lx = L + k * 150;
    legend.append(s("rect", { x: lx, y: H - 14, width: 12, height: 12, fill: COLORS[k % COLORS.length] }));
    legend.append(s("text", { x: lx + 16, y: H - 4, class: "axis" }, serie.label));
  });
  svg.append(legend);
  return svg;
}

// items: [{label, value}] as horizontal bars.
export function barChart(items, { title = "" } = {}) {
  const W = 560, row = 28, L = 120, R = 40, T = 8;
  const H = T * 2 + row * Math.max(items.length, 1);
  const max = Math.max(1, ...items.map((i) => i.value));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  items.forEach((item, i) => {
    const y = T + i * row;
    const w = ((W - L - R) * item.value) / max;
    svg.append(s("text", { x: L - 8, y: y + row / 2 + 4, "text-anchor": "end", class: "axis" }, item.label));
    const bar = s("rect", { x: L, y: y + 4, width: Math.max(w, 1), height: row - 8, fill: "#c0392b", rx: 3 });
    bar.append(s("title", {}, `${item.label}: ${item.value}`));
    svg.append(bar);
    svg.append(s("text", { x: L + w + 6, y: y + row / 2 + 4, class: "axis" }, item.value));
  });
  return svg;
}
