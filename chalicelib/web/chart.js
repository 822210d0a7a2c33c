// A small SVG line chart: one line per venue over the last couple of minutes, waiting limit
// orders as horizontal levels. Levels far from the price are pinned to the edge they lie beyond,
// so one distant limit does not flatten the lines.

const SVG = "http://www.w3.org/2000/svg";
const WINDOW_MS = 120 * 1000;
const MIN_WINDOW_MS = 30 * 1000;
const PAD = { top: 12, right: 64, bottom: 22, left: 8 };

// A class per venue (CSS gives the colours); a venue not listed gets the neutral one.
export function venueClass(venue) {
  return ["raydium", "meteora"].includes(venue) ? `venue-${venue}` : "venue-other";
}

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

export function formatPrice(p) {
  if (!Number.isFinite(p)) return "–";
  const abs = Math.abs(p);
  if (abs >= 1000) return p.toLocaleString("en-US", { maximumFractionDigits: 2 });
  if (abs >= 1) return p.toFixed(abs >= 100 ? 2 : 4);
  if (abs === 0) return "0";
  return p.toPrecision(4);
}

function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

export class PriceChart {
  constructor(container) {
    this.container = container;
    this.svg = el("svg", { class: "price-chart", role: "img", "aria-label": "price chart" });
    container.replaceChildren(this.svg);
    this.width = 600;
    this.height = 220;
    this.data = { series: new Map(), levels: [], label: "" };
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.measure()).observe(container);
    }
    this.measure();
  }

  measure() {
    const box = this.container.getBoundingClientRect();
    const width = Math.max(240, Math.round(box.width));
    const height = width < 520 ? 160 : 190;
    if (width !== this.width || height !== this.height) {
      this.width = width;
      this.height = height;
      this.render();
    }
  }

  // series: Map venue → [{t (ms), p (number)}]; levels: [{price, label}]
  update(data) {
    this.data = data;
    this.render();
  }

  render() {
    const { width, height } = this;
    const { series, levels, label } = this.data;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.setAttribute("width", String(width));
    this.svg.setAttribute("height", String(height));
    const nodes = [];
    const now = Date.now();
    // The last two minutes, or less while there is less history, so a fresh chart is not empty.
    let earliest = now;
    for (const values of series.values()) if (values.length) earliest = Math.min(earliest, values[0].t);
    const windowMs = Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, now - earliest));
    const t0 = now - windowMs;
    const points = [];
    for (const values of series.values()) for (const v of values) if (v.t >= t0) points.push(v.p);
    if (points.length === 0) {
      nodes.push(el("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" },
        "waiting for prices…"));
      this.svg.replaceChildren(...nodes);
      this.svg.setAttribute("aria-label", `${label}: no prices yet`);
      return;
    }
    let lo = Math.min(...points);
    let hi = Math.max(...points);
    const mid = (lo + hi) / 2;
    // Levels within 6 % of the price widen the range; further ones are drawn at the edge.
    for (const level of levels) {
      if (Math.abs(level.price - mid) / mid <= 0.06) {
        lo = Math.min(lo, level.price);
        hi = Math.max(hi, level.price);
      }
    }
    const span = hi - lo || Math.abs(mid) * 0.002 || 1;
    lo -= span * 0.12;
    hi += span * 0.12;
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - t0) / windowMs) * plotW;
    const y = (p) => PAD.top + (1 - (p - lo) / (hi - lo)) * plotH;

    for (const tick of niceTicks(lo, hi, 4)) {
      const ty = y(tick);
      if (ty < PAD.top - 1 || ty > PAD.top + plotH + 1) continue;
      nodes.push(el("line", { x1: PAD.left, x2: PAD.left + plotW, y1: ty, y2: ty, class: "grid" }));
      nodes.push(el("text", { x: PAD.left + plotW + 6, y: ty + 4, class: "axis" }, formatPrice(tick)));
    }
    const tickSecs = windowMs > 60000 ? 30 : windowMs > 30000 ? 15 : 10;
    for (let secs = tickSecs; secs * 1000 <= windowMs; secs += tickSecs) {
      const tx = x(now - secs * 1000);
      if (tx < PAD.left + 12 || tx > PAD.left + plotW - 36) continue;
      nodes.push(el("text", { x: tx, y: height - 6, class: "axis", "text-anchor": "middle" }, `-${secs}s`));
    }
    nodes.push(el("text", { x: PAD.left + plotW, y: height - 6, class: "axis", "text-anchor": "end" }, "now"));

    for (const level of levels) {
      const inside = level.price >= lo && level.price <= hi;
      const ly = inside ? y(level.price) : level.price > hi ? PAD.top + 2 : PAD.top + plotH - 2;
      const text = `${inside ? "" : level.price > hi ? "▲ " : "▼ "}${level.label} ${formatPrice(level.price)}`;
      nodes.push(el("line", { x1: PAD.left, x2: PAD.left + plotW, y1: ly, y2: ly,
        class: inside ? "level" : "level off" }));
      nodes.push(el("text", { x: PAD.left + 4, y: ly - 4, class: "level-label" }, text));
    }

    const summary = [];
    for (const [venue, values] of series) {
      const visible = values.filter((v) => v.t >= t0);
      if (visible.length === 0) continue;
      const cls = venueClass(venue);
      const d = visible.map((v, i) => `${i ? "L" : "M"}${x(v.t).toFixed(1)},${y(v.p).toFixed(1)}`).join(" ");
      nodes.push(el("path", { d, class: `series ${cls}`, "data-venue": venue }));
      const last = visible[visible.length - 1];
      nodes.push(el("circle", { cx: x(last.t), cy: y(last.p), r: 3.5, class: `last ${cls}` }));
      summary.push(`${venue} ${formatPrice(last.p)}`);
    }
    this.svg.replaceChildren(...nodes);
    this.svg.setAttribute("aria-label", `${label}: ${summary.join(", ")}`);
  }
}
