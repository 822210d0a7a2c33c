// The live dashboard: a client of the public contract (API.md), REST and WebSocket, nothing else.

import { Api } from "./api.js";
import { formatPrice, PriceChart, venueClass } from "./chart.js";
import { LiveFeed } from "./live.js";
import { canonicalPair, pairKey, Prices } from "./prices.js";
import { CANCELLABLE, STATUSES, Store, steps, TERMINAL } from "./store.js";

const KEY_STORAGE = "order-engine.apiKey";
const SIM_STAGES = new Set(["local", "dev"]);
const DISCOVER_EVERY_MS = 5000;
const MAX_ROWS = 200;

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function meta(name) {
  const node = document.querySelector(`meta[name="${name}"]`);
  const value = node ? node.getAttribute("content") : "";
  return value && !value.startsWith("{{") ? value : "";
}

// The WebSocket API: what the server says (WS_PUBLIC_URL), else the local convention of the
// REST port + 1 on the page's own host (REST 8000, WebSocket 8001).
function defaultWsUrl() {
  const configured = meta("order-engine:ws-url");
  if (configured) return configured.replace(/\/+$/, "");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const port = Number(location.port || (location.protocol === "https:" ? 443 : 80)) + 1;
  return `${scheme}://${location.hostname}:${port}`;
}

// ---- formatting ---------------------------------------------------------------------------
const names = new Map(); // mint → symbol, for launched tokens

function tokenLabel(token) {
  if (!token) return "";
  if (names.has(token)) return names.get(token);
  return token.length > 12 ? `${token.slice(0, 4)}…${token.slice(-4)}` : token;
}

function shortId(orderId) {
  return orderId.length > 14 ? `${orderId.slice(0, 4)}…${orderId.slice(-6)}` : orderId;
}

function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleTimeString([], { hour12: false }) + `.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function dateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString([], { hour12: false });
}

function condition(order) {
  if (order.type === "limit" && order.limitPrice) {
    return `limit ≥ ${order.limitPrice} ${tokenLabel(order.tokenOut)}/${tokenLabel(order.tokenIn)}`;
  }
  if (order.type === "sniper") {
    const mint = order.watchMint || order.tokenOut;
    const price = order.maxPrice ? ` · max ${order.maxPrice}` : "";
    return `watching ${tokenLabel(mint)}${price}`;
  }
  return "";
}

// ---- app state ------------------------------------------------------------------------------
const stage = meta("order-engine:stage") || "local";
const api = new Api(() => localStorage.getItem(KEY_STORAGE));
const store = new Store();
let selectedId = null;
let started = false;
let wsUrl = defaultWsUrl();
let connState = { state: "connecting", connections: 0 };

const feed = new LiveFeed({
  url: wsUrl,
  getKey: () => localStorage.getItem(KEY_STORAGE),
  resumeFrom: (orderId, again) => {
    const order = store.get(orderId);
    // A first subscription asks for a snapshot unless the page holds the whole order already; a
    // re-subscription always resumes after the last seq seen.
    if (!order) return null;
    return order.full || again ? store.lastSeq(orderId) : null;
  },
  onMessage: onSocketMessage,
  onState: (state, detail, connections = 0) => {
    connState = { state, detail, connections };
    renderConn();
  },
});

function onSocketMessage(message) {
  if (!message || typeof message !== "object") return;
  switch (message.type) {
    case "order.snapshot":
      store.applySnapshot(message);
      break;
    case "order.status": {
      const result = store.applyStatus(message);
      if (result === "gap") refreshOrder(message.orderId);
      if (result === "unknown") discover();
      break;
    }
    case "error":
      if (message.code === "unauthorized") openKeyDialog("The server refused this key.");
      else if (message.code !== "not_found") toast(`${message.code}: ${message.message}`);
      break;
    default:
      break;
  }
}

async function refreshOrder(orderId) {
  try {
    const { data } = await api.order(orderId);
    store.putView(data);
  } catch (err) {
    // The socket keeps it current; this only fills a gap.
  }
}

// ---- connection indicator --------------------------------------------------------------------
function renderConn() {
  const { state, connections } = connState;
  const labels = {
    connecting: "connecting…", reconnecting: "reconnecting…", offline: "offline", nokey: "no API key",
    live: connections > 1 ? `live · reconnected ${connections - 1}×` : "live",
  };
  $("conn").dataset.state = state;
  $("conn").dataset.connections = String(connections);
  $("conn-text").textContent = labels[state] || state;
}

// ---- toast -----------------------------------------------------------------------------------
let toastTimer = null;
function toast(text) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 5000);
}

// ---- API key -------------------------------------------------------------------------------
function openKeyDialog(error = "") {
  const dialog = $("key-dialog");
  if (!dialog.open) $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("api-key-error").textContent = error;
  $("api-key").setAttribute("aria-invalid", error ? "true" : "false");
  $("key-hint").textContent = stage === "local"
    ? "The local stack's key is local-dev-key unless API_KEYS says otherwise." : "";
  if (!dialog.open) {
    dialog.showModal();
    $("api-key").focus();
  }
}

async function saveKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    $("api-key-error").textContent = "Enter the key.";
    return;
  }
  const previous = localStorage.getItem(KEY_STORAGE);
  localStorage.setItem(KEY_STORAGE, key);
  try {
    await api.orders(1);
  } catch (err) {
    if (err.status === 401) {
      if (previous) localStorage.setItem(KEY_STORAGE, previous);
      else localStorage.removeItem(KEY_STORAGE);
      $("api-key-error").textContent = err.message;
      $("api-key").setAttribute("aria-invalid", "true");
      return;
    }
  }
  $("key-dialog").close();
  if (!started) start();
  else if (key !== previous) {
    store.orders.clear();
    $("order-rows").replaceChildren();
    rows.clear();
    selectOrder(null);
    feed.restart();
    discover();
  }
}

// ---- order form -----------------------------------------------------------------------------
const form = $("order-form");

function orderType() {
  return form.querySelector('input[name="type"]:checked').value;
}

function syncForm() {
  const type = orderType();
  for (const node of form.querySelectorAll("[data-show-for]")) {
    node.hidden = !node.dataset.showFor.split(" ").includes(type);
  }
  const tokenIn = $("tokenIn").value.trim() || "token";
  const tokenOut = $("tokenOut").value.trim() || "token";
  $("amount-unit").textContent = tokenLabel(tokenIn);
  $("maxPrice-hint").textContent = `${tokenLabel(tokenIn)} per ${tokenLabel(tokenOut)}, at most`;
  let limitHint = `${tokenLabel(tokenOut)} per ${tokenLabel(tokenIn)}, at least`;
  if (type === "limit") {
    const canon = canonicalPair(tokenIn.toUpperCase(), tokenOut.toUpperCase());
    const latest = prices.latest(pairKey(canon.base, canon.quote));
    if (latest.length) {
      const best = Math.max(...latest.map((v) => (canon.inverted ? 1 / v.price : v.price)));
      limitHint += ` · now about ${formatPrice(best)}`;
    }
  }
  $("limitPrice-hint").textContent = limitHint;
}

function clearErrors(scope) {
  for (const node of scope.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const node of scope.querySelectorAll('[aria-invalid="true"]')) node.setAttribute("aria-invalid", "false");
}

function visible(node) {
  return node && !node.closest("[hidden]") && node.getClientRects().length > 0;
}

// The API names the field it refuses (error.field): the message goes beside that field.
function showFieldError(scope, err, statusNode) {
  const field = String(err.field || "");
  const candidates = [field, field.split(".")[0]];
  for (const name of candidates) {
    if (!name) continue;
    const slot = scope.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot && visible(slot.parentElement || slot)) {
      slot.textContent = err.message;
      const input = scope.querySelector(`[data-field="${CSS.escape(name)}"] input, [data-field="${CSS.escape(name)}"] select`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        if (!input.matches('[type="radio"], [type="checkbox"]')) input.focus();
      }
      setStatus(statusNode, "error", "Refused: see the field marked.");
      return;
    }
  }
  setStatus(statusNode, "error", field ? `${field}: ${err.message}` : err.message);
}

function setStatus(node, state, text, extra = {}) {
  for (const key of Object.keys(node.dataset)) if (key !== "state") delete node.dataset[key];
  node.dataset.state = state;
  node.replaceChildren(...(Array.isArray(text) ? text : [text]));
  for (const [k, v] of Object.entries(extra)) node.dataset[k] = v;
}

function formBody() {
  const type = orderType();
  const value = (id) => $(id).value.trim();
  const body = { type, tokenIn: value("tokenIn"), tokenOut: value("tokenOut"), amount: value("amount") };
  if (value("slippageBps") !== "") body.slippageBps = Number(value("slippageBps"));
  if (value("clientOrderId")) body.clientOrderId = value("clientOrderId");
  if (type === "limit") body.limitPrice = value("limitPrice");
  if (type === "sniper") {
    body.maxPrice = value("maxPrice");
    // Every check says what it asks: an unticked box switches that check off (each is on by default).
    const checks = {};
    for (const [id, name] of [["check-mint", "mintRenounced"], ["check-freeze", "freezeRenounced"],
      ["check-lp", "lpBurned"]]) {
      checks[name] = $(id).checked;
    }
    if (value("minLiquidity")) checks.minLiquidity = value("minLiquidity");
    body.checks = checks;
    if (value("delaySlots") !== "" && Number(value("delaySlots")) !== 0) body.delaySlots = Number(value("delaySlots"));
  }
  if ((type === "limit" || type === "sniper") && value("expiresAt")) {
    const at = new Date(value("expiresAt"));
    body.expiresAt = Number.isNaN(at.getTime()) ? value("expiresAt") : at.toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  return body;
}

async function submitOrder(event) {
  event.preventDefault();
  const status = $("submit-status");
  clearErrors(form);
  const body = formBody();
  const button = $("submit-button");
  button.disabled = true;
  setStatus(status, "busy", "Submitting…");
  try {
    const { data, status: code } = await api.submit(body);
    learnWsUrl(data.wsUrl);
    const order = code === 200 && !store.get(data.orderId) ? await loadOne(data.orderId, data, body)
      : store.putAccepted(data, body);
    if (!TERMINAL.has(order.status)) feed.follow(order.orderId);
    selectOrder(order.orderId);
    const text = code === 200 ? "Already submitted" : "Accepted";
    setStatus(status, "ok", [`${text} `, h("code", { text: order.orderId })], { orderId: order.orderId });
  } catch (err) {
    if (err.status === 401) openKeyDialog(err.message);
    if (err.status === 429) {
      setStatus(status, "error", `${err.message}; retry in ${err.retryAfter || "a few"} s`);
    } else {
      showFieldError(form, err, status);
    }
  } finally {
    button.disabled = false;
  }
}

async function loadOne(orderId, accepted, body) {
  try {
    const { data } = await api.order(orderId);
    return store.putView(data);
  } catch (err) {
    return store.putAccepted(accepted, body);
  }
}

// POST answers with the socket to follow the order on: the page uses the same one.
function learnWsUrl(url) {
  if (!url) return;
  try {
    const u = new URL(url);
    u.search = "";
    const base = u.toString().replace(/\/+$/, "");
    if (base !== wsUrl.replace(/\/+$/, "")) {
      wsUrl = base;
      feed.restart(base);
    }
  } catch (err) {
    // keep the one we have
  }
}

// ---- orders: table ---------------------------------------------------------------------------
const rows = new Map(); // orderId → {tr, cells}
const COLUMNS = [
  ["order", "Order"], ["pair", "Pair"], ["amount", "Amount"], ["status", "Status"], ["venue", "Venue"],
  ["out", "Out"], ["steps", "Steps"], ["actions", ""],
];

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: status });
}

function makeRow(order) {
  const tr = h("tr", { "data-order-id": order.orderId });
  const cells = {};
  for (const [col, label] of COLUMNS) {
    const td = h("td", { "data-col": col, "data-label": label,
      class: col === "amount" || col === "out" ? "num" : null });
    cells[col] = td;
    tr.append(td);
  }
  cells.order.append(h("button", {
    type: "button", class: "link mono", "data-action": "select",
    "aria-label": `Show order ${order.orderId}`, title: order.orderId,
    onclick: () => selectOrder(order.orderId, true),
  }, shortId(order.orderId)));
  if (order.type !== "market") cells.order.append(h("span", { class: "type-tag", "data-type": order.type, text: order.type }));
  tr.addEventListener("click", (event) => {
    if (!event.target.closest("button")) selectOrder(order.orderId);
  });
  return { tr, cells, rendered: {} };
}

function setCell(row, col, key, build) {
  if (row.rendered[col] === key) return;
  row.rendered[col] = key;
  const td = row.cells[col];
  const content = build();
  td.replaceChildren(...(Array.isArray(content) ? content : [content]).filter((c) => c !== null));
}

function renderRow(order) {
  let row = rows.get(order.orderId);
  if (!row) {
    row = makeRow(order);
    rows.set(order.orderId, row);
    placeRow(order, row);
  }
  row.tr.dataset.status = order.status;
  row.tr.classList.toggle("selected", order.orderId === selectedId);
  const cond = condition(order);
  setCell(row, "pair", `${order.tokenIn}|${order.tokenOut}|${cond}`, () => [
    h("span", { class: "pair" }, `${tokenLabel(order.tokenIn)} → ${tokenLabel(order.tokenOut)}`),
    cond ? h("span", { class: "sub", "data-testid": "condition" }, cond) : null,
  ]);
  setCell(row, "amount", `${order.amount}`, () => `${order.amount} ${tokenLabel(order.tokenIn)}`);
  setCell(row, "status", `${order.status}|${order.attempt}`, () => [
    statusBadge(order.status),
    order.status === "pending" && order.attempt ? h("span", { class: "sub" }, `retry ${order.attempt}`) : null,
  ]);
  setCell(row, "venue", order.venue || "", () => (order.venue
    ? h("span", { class: `venue ${venueClass(order.venue)}` }, order.venue) : h("span", { class: "muted" }, "–")));
  // In flight: the amount the chosen quote promised (≈); once confirmed, the amount received.
  const quoted = order.venue && order.quotes.find((q) => q.venue === order.venue);
  const expected = TERMINAL.has(order.status) ? null : order.expectedAmountOut || (quoted && quoted.amountOut) || null;
  const out = order.status === "failed" && order.error ? `!${order.error.code}`
    : order.amountOut || (expected ? `~${expected}` : "");
  setCell(row, "out", out, () => {
    if (order.amountOut) return `${order.amountOut} ${tokenLabel(order.tokenOut)}`;
    if (order.status === "failed" && order.error) return h("span", { class: "error-code" }, order.error.code);
    if (expected) {
      return h("span", { class: "expected", title: "quoted; not yet received" },
        `≈ ${expected} ${tokenLabel(order.tokenOut)}`);
    }
    return h("span", { class: "muted" }, "–");
  });
  renderSteps(order, row);
  const cancellable = CANCELLABLE.has(order.status);
  setCell(row, "actions", cancellable ? "cancel" : "", () => (cancellable
    ? h("button", { type: "button", class: "small danger", "data-action": "cancel",
      "aria-label": `Cancel order ${order.orderId}`, onclick: () => cancelOrder(order.orderId) }, "Cancel")
    : null));
}

function renderSteps(order, row, now = Date.now()) {
  const list = steps(order, now);
  const key = list.map((s) => `${s.status}:${s.live ? "live" : s.ms}`).join(",");
  const live = list.some((s) => s.live);
  if (!live && row.rendered.steps === key) return;
  row.rendered.steps = key;
  const total = list.reduce((sum, s) => sum + s.ms, 0);
  const bar = h("div", { class: "stepbar", "aria-hidden": "true" });
  for (const s of list) {
    if (TERMINAL.has(s.status)) continue;
    const seg = h("span", { class: `seg status-${s.status}${s.live ? " live" : ""}`,
      title: `${s.status} ${duration(s.ms)}` });
    seg.style.flexGrow = String(Math.max(s.ms, total * 0.03, 1));
    bar.append(seg);
  }
  const text = list.filter((s) => !TERMINAL.has(s.status)).map((s) => `${s.status} ${duration(s.ms)}`).join(", ");
  row.cells.steps.replaceChildren(h("div", { class: "steps" }, bar, h("span", { class: "total", title: text },
    h("span", { class: "visually-hidden" }, `${text}; `), duration(total))));
}

function placeRow(order, row) {
  const body = $("order-rows");
  const sorted = store.sorted();
  const index = sorted.findIndex((o) => o.orderId === order.orderId);
  const next = sorted.slice(index + 1).map((o) => rows.get(o.orderId)).find((r) => r && r.tr.isConnected);
  if (next) body.insertBefore(row.tr, next.tr);
  else body.append(row.tr);
  while (body.children.length > MAX_ROWS) {
    const last = body.lastElementChild;
    rows.delete(last.dataset.orderId);
    last.remove();
  }
}

async function cancelOrder(orderId) {
  try {
    const { data } = await api.cancel(orderId);
    store.putView(data);
    toast(`Cancelled ${shortId(orderId)}.`);
  } catch (err) {
    if (err.unavailable) toast("Cancel is not served here yet (DELETE /api/orders/{id}).");
    else toast(`${err.code}: ${err.message}`);
  }
}

// ---- orders: detail --------------------------------------------------------------------------
function selectOrder(orderId, focus = false) {
  const previous = selectedId;
  selectedId = orderId;
  for (const id of [previous, orderId]) {
    const row = id && rows.get(id);
    if (row) row.tr.classList.toggle("selected", id === selectedId);
  }
  renderDetail();
  if (focus) $("detail").focus();
}

function fact(label, value, opts = {}) {
  if (value === null || value === undefined || value === "") return null;
  return h("div", { class: "fact", "data-fact": opts.key || null },
    h("dt", { text: label }), h("dd", { class: opts.mono ? "mono" : null, title: opts.title || null }, value));
}

function quotesTable(order) {
  if (!order.quotes.length) return null;
  const quotes = [...order.quotes].sort((a, b) => Number(b.amountOut) - Number(a.amountOut));
  const chosenVenue = order.venue || quotes[0].venue;
  const chosen = quotes.find((q) => q.venue === chosenVenue) || quotes[0];
  const others = quotes.filter((q) => q !== chosen);
  const best = others.length ? others.reduce((a, b) => (Number(a.amountOut) >= Number(b.amountOut) ? a : b)) : null;
  let margin = null;
  if (best && Number(best.amountOut) > 0) {
    const pct = ((Number(chosen.amountOut) - Number(best.amountOut)) / Number(best.amountOut)) * 100;
    margin = `${pct >= 0 ? "+" : ""}${pct.toFixed(2)} % over ${best.venue}`;
  }
  const unit = tokenLabel(order.tokenOut);
  return h("table", { class: "quotes" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Venue" }), h("th", { scope: "col", class: "num", text: `Out (${unit})` }),
      h("th", { scope: "col", class: "num", text: "Fee" }), h("th", { scope: "col", class: "num", text: "Impact" }),
      h("th", { scope: "col", text: "" }))),
    h("tbody", {}, quotes.map((q) => h("tr", { class: q === chosen ? "chosen" : null, "data-venue": q.venue },
      h("td", {}, h("span", { class: `venue ${venueClass(q.venue)}` }, q.venue)),
      h("td", { class: "num mono" }, q.amountOut),
      h("td", { class: "num mono" }, `${q.fee} ${tokenLabel(order.tokenIn)}`),
      h("td", { class: "num" }, `${q.priceImpactBps ?? 0} bps`),
      h("td", { class: "mark" }, q === chosen
        ? h("span", { class: "chosen-mark", "data-testid": "chosen" }, "✓ chosen", margin ? h("span", { class: "margin" }, ` ${margin}`) : null)
        : null)))));
}

function renderDetail() {
  const body = $("detail-body");
  const order = selectedId && store.get(selectedId);
  if (!order) {
    body.replaceChildren(h("p", { class: "empty" }, "Select an order to see its quotes, route and transaction."));
    return;
  }
  const focused = document.activeElement && body.contains(document.activeElement)
    ? document.activeElement.dataset.action : null;
  const out = tokenLabel(order.tokenOut);
  const inn = tokenLabel(order.tokenIn);
  const trigger = order.trigger
    ? `${order.trigger.kind}${order.trigger.price ? ` at ${order.trigger.price}` : ""}${order.trigger.pool ? ` pool ${order.trigger.pool}` : ""}${order.trigger.slot ? ` · slot ${order.trigger.slot}` : ""}`
    : null;
  const facts = h("dl", { class: "facts" },
    fact("Pair", `${inn} → ${out}`),
    fact("Amount", `${order.amount} ${inn}`),
    fact("Slippage", order.slippageBps !== null ? `${order.slippageBps} bps` : null),
    fact("Created", order.createdAt ? dateTime(order.createdAt) : null),
    fact("Limit", order.limitPrice ? `≥ ${order.limitPrice} ${out} per ${inn}` : null),
    fact("Watching", order.type === "sniper" ? order.watchMint || order.tokenOut : null, { mono: true }),
    fact("Max price", order.maxPrice ? `${order.maxPrice} ${inn} per ${out}` : null),
    fact("Expires", order.expiresAt ? dateTime(order.expiresAt) : null),
    fact("Trigger", trigger),
    fact("Venue", order.venue, { key: "venue" }),
    fact("Min amount out", order.minAmountOut ? `${order.minAmountOut} ${out}` : null, { key: "minAmountOut" }),
    fact("Amount out", order.amountOut ? `${order.amountOut} ${out}` : null, { key: "amountOut" }),
    fact("Executed price", order.executedPrice ? `${formatPrice(Number(order.executedPrice))} ${out} per ${inn}` : null,
      { key: "executedPrice", title: order.executedPrice }),
    fact("Signature", order.signature || order.txHash, { mono: true, key: "signature" }),
    fact("Attempts", order.attempts > 1 ? String(order.attempts) : null),
    fact("Cancelled by", order.cancelledBy),
    fact("Client order id", order.clientOrderId, { mono: true }));

  const parts = [
    h("div", { class: "detail-head" },
      h("code", { class: "mono order-id", text: order.orderId }),
      h("span", { class: "type-tag", "data-type": order.type, text: order.type }),
      statusBadge(order.status)),
    facts,
  ];
  if (order.error) {
    parts.push(h("div", { class: "error-box", role: "note" },
      h("strong", { text: order.error.code || "error" }), " ",
      h("span", { text: order.error.message || "" }),
      order.error.attempt ? h("span", { class: "sub" }, ` · attempt ${order.error.attempt}`) : null,
      order.error.retryable !== undefined ? h("span", { class: "sub" }, order.error.retryable ? " · retryable" : " · final") : null));
  }
  const quotes = quotesTable(order);
  if (quotes) parts.push(h("h3", { text: "Quotes" }), h("div", { class: "quotes-wrap" }, quotes));
  if (order.rejected && order.rejected.length) {
    parts.push(h("p", { class: "sub" }, `Rejected: ${order.rejected.map((r) => (typeof r === "string" ? r : `${r.venue || ""} ${r.reason || r.code || ""}`)).join(", ")}`));
  }
  const list = steps(order, Date.now());
  parts.push(h("h3", { text: "Timeline" }), h("ol", { class: "timeline" }, list.map((s) => h("li", { class: `status-${s.status}` },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "t-status", text: s.status }),
    h("span", { class: "t-at mono", text: clock(s.at) }),
    h("span", { class: "t-ms", "data-live-since": s.live ? String(Date.parse(s.at)) : null,
      text: TERMINAL.has(s.status) ? "" : `${duration(s.ms)}${s.live ? "…" : ""}` })))));
  if (CANCELLABLE.has(order.status)) {
    parts.push(h("div", { class: "actions" }, h("button", { type: "button", class: "danger", "data-action": "cancel",
      onclick: () => cancelOrder(order.orderId) }, "Cancel order")));
  }
  body.replaceChildren(...parts);
  if (focused) body.querySelector(`[data-action="${focused}"]`)?.focus();
}

// ---- stats -------------------------------------------------------------------------------------
function renderStats() {
  const counts = store.counts();
  const list = $("counts");
  if (!list.children.length) {
    for (const status of STATUSES) {
      list.append(h("li", { class: `count status-${status}`, "data-status": status },
        h("span", { class: "n", text: "0" }), h("span", { class: "label", text: status })));
    }
  }
  for (const li of list.children) {
    const n = counts[li.dataset.status] || 0;
    li.querySelector(".n").textContent = String(n);
    li.classList.toggle("zero", n === 0);
  }
  $("throughput").textContent = String(store.confirmedSince(Date.now() - 60000));
  $("orders-empty").hidden = store.orders.size > 0;
  $("orders-note").textContent = store.orders.size ? `${store.orders.size} shown, newest first` : "";
}

// ---- prices --------------------------------------------------------------------------------
const prices = new Prices(api, renderPrices);
const chart = new PriceChart($("chart"));
let selectedPair = prices.addPair("SOL", "USDC");

function wantedPairs() {
  const keys = [selectedPair];
  for (const order of store.orders.values()) {
    if (order.status === "waiting" && order.type === "limit") {
      const c = canonicalPair(order.tokenIn, order.tokenOut);
      keys.push(prices.addPair(c.base, c.quote));
    }
  }
  return keys;
}

function ordersPairs() {
  for (const order of store.orders.values()) {
    if (!order.tokenIn || !order.tokenOut || order.type === "sniper") continue;
    const c = canonicalPair(order.tokenIn, order.tokenOut);
    prices.addPair(c.base, c.quote);
  }
}

function renderPairSelect() {
  const select = $("pair-select");
  const keys = [...prices.pairs.keys()];
  if (select.options.length === keys.length && [...select.options].every((o, i) => o.value === keys[i])) return;
  select.replaceChildren(...keys.map((key) => {
    const { base, quote, symbol } = prices.pairs.get(key);
    const label = `${symbol || tokenLabel(base)}/${tokenLabel(quote)}`;
    return h("option", { value: key, selected: key === selectedPair }, label);
  }));
  select.value = selectedPair;
}

function renderPrices() {
  ordersPairs();
  renderPairSelect();
  const pair = prices.pairs.get(selectedPair);
  const latest = prices.latest(selectedPair);
  const legend = $("legend");
  const items = latest.map((v) => h("span", { class: `legend-item ${venueClass(v.venue)}`, "data-venue": v.venue },
    h("span", { class: "swatch", "aria-hidden": "true" }), `${v.venue} `,
    h("strong", { class: "mono", text: formatPrice(v.price) }),
    v.liquidity !== null ? h("span", { class: "sub" }, ` · liq ${v.liquidity}`) : null));
  if (latest.length >= 2) {
    const ps = latest.map((v) => v.price);
    const spread = ((Math.max(...ps) - Math.min(...ps)) / Math.min(...ps)) * 100;
    items.push(h("span", { class: "legend-item spread" }, `spread ${spread.toFixed(2)} %`));
  }
  legend.replaceChildren(...items);
  const levels = [];
  for (const order of store.orders.values()) {
    if (order.type !== "limit" || order.status !== "waiting" || !order.limitPrice) continue;
    const c = canonicalPair(order.tokenIn, order.tokenOut);
    if (pairKey(c.base, c.quote) !== selectedPair) continue;
    const p = Number(order.limitPrice);
    if (!(p > 0)) continue;
    levels.push({ price: c.inverted ? 1 / p : p, label: `limit ${shortId(order.orderId)}` });
  }
  const unit = pair ? `${tokenLabel(pair.quote)} per ${pair.symbol || tokenLabel(pair.base)}` : "";
  chart.update({ series: prices.series.get(selectedPair) || new Map(), levels, label: `${selectedPair} in ${unit}` });
  const source = prices.source === "markets" ? "GET /api/markets" : prices.source === "quotes"
    ? "GET /api/quotes, one unit of the base token" : "…";
  $("price-source").textContent = `${unit}, every 2 s, from ${source}`;
  if (orderType() === "limit") syncForm();
}

// ---- launches (simulation, local and dev stages) ----------------------------------------------
async function launch(event) {
  event.preventDefault();
  const launchForm = $("launch-form");
  const result = $("launch-result");
  clearErrors(launchForm);
  const data = new FormData(launchForm);
  const body = {
    symbol: String(data.get("symbol") || "").trim(),
    decimals: Number(data.get("decimals")),
    venue: String(data.get("venue")),
    liquidity: String(data.get("liquidity") || "").trim(),
    openInSlots: Number(data.get("openInSlots")),
    mintRenounced: data.get("mintRenounced") !== null,
    freezeRenounced: data.get("freezeRenounced") !== null,
    lpBurned: data.get("lpBurned") !== null,
  };
  $("launch-button").disabled = true;
  setStatus(result, "busy", "Launching…");
  try {
    const { data: launched } = await api.launch(body);
    names.set(launched.mint, body.symbol);
    const key = prices.addPair(launched.mint, "SOL");
    prices.pairs.get(key).symbol = body.symbol;
    setStatus(result, "ok", [
      h("span", {}, `${body.symbol} launched on ${launched.venue}, opens at slot ${launched.openSlot}. Mint `),
      h("code", { class: "mono", "data-testid": "mint", text: launched.mint }), " ",
      h("button", { type: "button", class: "small", id: "snipe-button", onclick: () => prepareSnipe(launched.mint) },
        "Snipe it"),
    ], { mint: launched.mint });
  } catch (err) {
    if (err.unavailable) setStatus(result, "error", "Launches are not served here yet (POST /api/sim/launches).");
    else showFieldError(launchForm, err, result);
  } finally {
    $("launch-button").disabled = false;
  }
}

function prepareSnipe(mint) {
  $("type-sniper").checked = true;
  $("tokenIn").value = "SOL";
  $("tokenOut").value = mint;
  if (!$("amount").value) $("amount").value = "0.5";
  if (Number($("slippageBps").value) < 500) $("slippageBps").value = "500";
  syncForm();
  $("maxPrice").focus();
}

// ---- start -----------------------------------------------------------------------------------
async function discover() {
  try {
    const { data } = await api.orders(50);
    for (const view of data.orders || []) {
      if (store.get(view.orderId)) continue; // the socket keeps known orders current
      const order = store.putView(view);
      if (!TERMINAL.has(order.status)) feed.follow(order.orderId);
    }
  } catch (err) {
    if (err.status === 401) openKeyDialog("The server refused this key.");
  }
}

function start() {
  started = true;
  feed.start();
  discover();
  prices.start(2000, wantedPairs);
  setInterval(discover, DISCOVER_EVERY_MS);
  setInterval(tick, 500);
}

function tick() {
  const now = Date.now();
  for (const order of store.orders.values()) {
    if (TERMINAL.has(order.status)) continue;
    const row = rows.get(order.orderId);
    if (row) renderSteps(order, row, now);
  }
  // The current step's clock in the detail; the rest of it changes only with a status.
  for (const node of document.querySelectorAll("#detail [data-live-since]")) {
    node.textContent = `${duration(Math.max(0, now - Number(node.dataset.liveSince)))}…`;
  }
  renderStats();
}

store.onChange((order) => {
  renderRow(order);
  if (order.orderId === selectedId) renderDetail();
  if (TERMINAL.has(order.status)) feed.unfollow(order.orderId);
  renderStats();
});

function init() {
  $("stage-badge").textContent = stage;
  $("launch-card").hidden = !SIM_STAGES.has(stage);
  renderConn();
  renderStats();
  syncForm();
  form.addEventListener("submit", submitOrder);
  form.addEventListener("change", (event) => {
    if (event.target.name === "type") {
      clearErrors(form);
      setStatus($("submit-status"), "idle", "");
    }
    syncForm();
  });
  form.addEventListener("input", (event) => {
    if (event.target.id === "tokenIn" || event.target.id === "tokenOut") syncForm();
  });
  $("launch-form").addEventListener("submit", launch);
  $("pair-select").addEventListener("change", (event) => {
    selectedPair = event.target.value;
    prices.poll();
    renderPrices();
  });
  $("key-button").addEventListener("click", () => openKeyDialog());
  $("key-form").addEventListener("submit", saveKey);
  $("key-dialog").addEventListener("cancel", (event) => {
    if (!localStorage.getItem(KEY_STORAGE)) event.preventDefault();
  });
  renderPrices();
  if (localStorage.getItem(KEY_STORAGE)) start();
  else {
    connState = { state: "nokey", connections: 0 };
    renderConn();
    openKeyDialog();
  }
}

init();
