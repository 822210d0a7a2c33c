// The WebSocket half of the contract: one socket for every order this page follows.
//
// A subscription starts with a snapshot; after a drop (API Gateway closes idle sockets after
// 10 minutes and every socket after 2 hours) the page reconnects and re-subscribes each order it
// still follows with afterSeq = the last seq it has seen, so it gets exactly the statuses it
// missed, then the live ones. Dropping statuses already seen is the store's job (seq).

const PING_EVERY_MS = 4 * 60 * 1000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export class LiveFeed {
  // resumeFrom(orderId, again) → the seq to resume after, or null for a snapshot; ``again`` is
  // true when this page subscribed to the order before, on an earlier socket.
  constructor({ url, getKey, resumeFrom, onMessage, onState }) {
    this.url = url;
    this.getKey = getKey;
    this.resumeFrom = resumeFrom;
    this.onMessage = onMessage;
    this.onState = onState;
    this.followed = new Set();
    this.subscribed = new Set(); // on the current socket
    this.everSubscribed = new Set(); // on any socket so far
    this.socket = null;
    this.failures = 0;
    this.connections = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.stopped = true;
  }

  state(name, detail = null) {
    this.onState(name, detail, this.connections);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  // A new key or URL: a new socket (the key is checked at the handshake).
  restart(url = this.url) {
    this.url = url;
    this.stop();
    this.start();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "bye");
  }

  follow(orderId) {
    this.followed.add(orderId);
    this.subscribe(orderId);
  }

  unfollow(orderId) {
    this.followed.delete(orderId);
    this.subscribed.delete(orderId);
    this.everSubscribed.delete(orderId);
  }

  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  subscribe(orderId) {
    if (!this.open || this.subscribed.has(orderId)) return;
    const message = { action: "subscribe", orderId };
    const after = this.resumeFrom(orderId, this.everSubscribed.has(orderId));
    if (after !== null && after !== undefined) message.afterSeq = after;
    if (this.send(message)) {
      this.subscribed.add(orderId);
      this.everSubscribed.add(orderId);
    }
  }

  connect() {
    if (this.stopped) return;
    const key = this.getKey();
    if (!key) {
      this.state("nokey");
      return;
    }
    let url;
    try {
      url = new URL(this.url);
    } catch (err) {
      this.state("offline", `bad WebSocket URL ${this.url}`);
      return;
    }
    url.searchParams.set("apiKey", key);
    this.state(this.connections === 0 ? "connecting" : "reconnecting");
    let socket;
    try {
      socket = new WebSocket(url.toString());
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.failures = 0;
      this.connections += 1;
      this.subscribed = new Set();
      this.state("live");
      for (const orderId of this.followed) this.subscribe(orderId);
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ action: "ping" }), PING_EVERY_MS);
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (message && message.type === "error" && message.code === "already_subscribed") return;
      if (message && message.type === "error" && message.code === "not_found" && message.orderId) {
        this.unfollow(message.orderId);
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.subscribed = new Set();
      clearInterval(this.pingTimer);
      if (this.stopped) return;
      // Refused before it opened: a bad key is refused at the handshake, or the server is away.
      if (!opened) this.failures += 1;
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.state("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
