// Orders as the page knows them: built from the API's order view or a snapshot, advanced by
// order.status messages. A status whose seq was already seen is dropped (API.md: after a fault a
// status may come twice with the same seq).

export const STATUSES = ["pending", "waiting", "routing", "building", "submitted", "confirmed", "failed",
  "cancelled", "expired"];
export const TERMINAL = new Set(["confirmed", "failed", "cancelled", "expired"]);
export const CANCELLABLE = new Set(["pending", "waiting"]);

function emptyOrder(orderId) {
  return {
    orderId, clientOrderId: null, type: "market", tokenIn: "", tokenOut: "", amount: "", slippageBps: null,
    status: "pending", seq: 0, createdAt: null, updatedAt: null, attempts: 0, attempt: null,
    venue: null, quotes: [], rejected: [], minAmountOut: null, expectedAmountOut: null, amountOut: null,
    executedPrice: null, signature: null, txHash: null, error: null,
    limitPrice: null, maxPrice: null, watchMint: null, expiresAt: null, trigger: null, cancelledBy: null,
    history: [], full: false,
  };
}

// What each status's data adds to the order (API.md, "data by status").
function absorb(order, status, data) {
  if (!data) return;
  switch (status) {
    case "pending":
      if (data.attempt) order.attempt = data.attempt;
      break;
    case "waiting":
      if (data.limitPrice) order.limitPrice = data.limitPrice;
      if (data.watchMint) order.watchMint = data.watchMint;
      if (data.expiresAt) order.expiresAt = data.expiresAt;
      break;
    case "routing":
      if (Array.isArray(data.quotes)) order.quotes = data.quotes;
      if (Array.isArray(data.rejected)) order.rejected = data.rejected;
      if (data.trigger) order.trigger = data.trigger;
      break;
    case "building":
      if (data.venue) order.venue = data.venue;
      if (data.minAmountOut) order.minAmountOut = data.minAmountOut;
      if (data.expectedAmountOut) order.expectedAmountOut = data.expectedAmountOut;
      break;
    case "submitted":
      if (data.signature) order.signature = data.signature;
      break;
    case "confirmed":
      for (const k of ["txHash", "amountOut", "executedPrice", "venue"]) if (data[k]) order[k] = data[k];
      break;
    case "failed":
      if (data.error) order.error = data.error;
      break;
    case "expired":
      if (data.expiresAt) order.expiresAt = data.expiresAt;
      break;
    case "cancelled":
      order.cancelledBy = data.by || order.cancelledBy;
      break;
    default:
      break;
  }
}

export function fromView(view) {
  const order = emptyOrder(view.orderId);
  const history = Array.isArray(view.history) ? [...view.history].sort((a, b) => a.seq - b.seq) : [];
  for (const event of history) absorb(order, event.status, event.data);
  for (const [key, value] of Object.entries(view)) {
    if (key === "history" || value === null || value === undefined) continue;
    if (key in order || ["limitPrice", "maxPrice", "expiresAt", "watchMint"].includes(key)) order[key] = value;
  }
  if (!Array.isArray(order.quotes)) order.quotes = [];
  const lastSeq = history.length ? history[history.length - 1].seq : 0;
  order.seq = Math.max(Number(view.seq) || 0, lastSeq);
  order.history = history.map((e) => ({ seq: e.seq, status: e.status, at: e.at, data: e.data || {} }));
  order.full = true;
  return order;
}

// What POST told us: seq 1 is pending (API.md), everything else comes from the socket.
export function fromAccepted(accepted, body, at) {
  const order = emptyOrder(accepted.orderId);
  Object.assign(order, {
    clientOrderId: accepted.clientOrderId || null,
    type: body.type || "market",
    tokenIn: body.tokenIn, tokenOut: body.tokenOut, amount: body.amount, slippageBps: body.slippageBps,
    limitPrice: body.limitPrice || null, maxPrice: body.maxPrice || null,
    status: accepted.status || "pending", seq: 1, createdAt: at, updatedAt: at,
    history: [{ seq: 1, status: "pending", at, data: {} }],
  });
  if (body.type === "sniper") order.watchMint = body.tokenOut;
  return order;
}

export class Store {
  constructor() {
    this.orders = new Map();
    this.duplicates = 0;
    this.listeners = new Set();
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  emit(order, kind) {
    for (const fn of this.listeners) fn(order, kind);
  }

  get(orderId) {
    return this.orders.get(orderId);
  }

  // The last seq seen, for a re-subscription; null when a snapshot is wanted instead.
  lastSeq(orderId) {
    const order = this.orders.get(orderId);
    return order && order.seq > 0 ? order.seq : null;
  }

  // A full order (GET, DELETE, snapshot): taken when it is at least as new as what we have.
  putView(view) {
    const current = this.orders.get(view.orderId);
    const order = fromView(view);
    if (current && current.seq > order.seq) return current;
    this.orders.set(order.orderId, order);
    this.emit(order, current ? "update" : "add");
    return order;
  }

  putAccepted(accepted, body) {
    const current = this.orders.get(accepted.orderId);
    if (current) return current; // an idempotent replay: the order is already here
    const order = fromAccepted(accepted, body, new Date().toISOString());
    this.orders.set(order.orderId, order);
    this.emit(order, "add");
    return order;
  }

  // order.status: applied once, in seq order. Returns "applied", "duplicate" or "gap".
  applyStatus(message) {
    const order = this.orders.get(message.orderId);
    if (!order) return "unknown";
    const seq = Number(message.seq);
    if (!(seq > order.seq)) {
      this.duplicates += 1;
      return "duplicate";
    }
    const gap = seq > order.seq + 1;
    order.history.push({ seq, status: message.status, at: message.at, data: message.data || {} });
    order.seq = seq;
    order.status = message.status;
    order.updatedAt = message.at || order.updatedAt;
    absorb(order, message.status, message.data);
    this.emit(order, "update");
    return gap ? "gap" : "applied";
  }

  applySnapshot(message) {
    if (!message.order) return;
    this.putView({ ...message.order, seq: message.seq });
  }

  sorted() {
    return [...this.orders.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  }

  counts() {
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const order of this.orders.values()) counts[order.status] = (counts[order.status] || 0) + 1;
    return counts;
  }

  confirmedSince(sinceMs) {
    let n = 0;
    for (const order of this.orders.values()) {
      if (order.status !== "confirmed") continue;
      const event = order.history.find((e) => e.status === "confirmed");
      const at = event ? Date.parse(event.at) : NaN;
      if (at >= sinceMs) n += 1;
    }
    return n;
  }
}

// Time spent in each step: from one status to the next, the last one until now when still live.
export function steps(order, nowMs) {
  const events = [...order.history].sort((a, b) => a.seq - b.seq);
  return events.map((event, i) => {
    const start = Date.parse(event.at);
    const next = events[i + 1];
    const terminal = TERMINAL.has(event.status);
    const end = next ? Date.parse(next.at) : terminal ? start : nowMs;
    return { status: event.status, seq: event.seq, at: event.at, ms: Math.max(0, end - start), live: !next && !terminal };
  });
}
