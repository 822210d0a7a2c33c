// The REST half of the public contract (API.md), as any client speaks it.

export class ApiError extends Error {
  constructor(status, code, message, field = null, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  // A route this server does not serve (yet): API Gateway answers an unknown path with 403
  // "Missing Authentication Token", an unknown method with 405; the contract says 404.
  get unavailable() {
    return this.code === "unavailable";
  }
}

export class Api {
  constructor(getKey) {
    this.getKey = getKey;
  }

  async request(method, path, body) {
    const headers = { "x-api-key": this.getKey() || "" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(new URL(path, document.baseURI), init);
    } catch (err) {
      throw new ApiError(0, "network_error", "the server does not answer");
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (err) {
      data = null;
    }
    if (resp.ok) return { status: resp.status, data };
    const error = data && typeof data.error === "object" && data.error;
    const retry = resp.headers.get("Retry-After");
    if (error && error.code) {
      const unknownRoute = resp.status === 404 && error.field !== "orderId" && error.code !== "not_cancellable";
      if (unknownRoute) throw new ApiError(404, "unavailable", error.message || "not available here");
      throw new ApiError(resp.status, error.code, error.message || error.code, error.field || null, retry);
    }
    if ([403, 404, 405].includes(resp.status)) {
      throw new ApiError(resp.status, "unavailable", "not available on this server");
    }
    throw new ApiError(resp.status, "http_error", `the server answered ${resp.status}`);
  }

  submit(order) {
    return this.request("POST", "api/orders/execute", order);
  }

  order(orderId) {
    return this.request("GET", `api/orders/${encodeURIComponent(orderId)}`);
  }

  orders(limit = 50) {
    return this.request("GET", `api/orders?limit=${limit}`);
  }

  cancel(orderId) {
    return this.request("DELETE", `api/orders/${encodeURIComponent(orderId)}`);
  }

  quotes(tokenIn, tokenOut, amount) {
    const q = new URLSearchParams({ tokenIn, tokenOut, amount });
    return this.request("GET", `api/quotes?${q}`);
  }

  markets() {
    return this.request("GET", "api/markets");
  }

  launch(body) {
    return this.request("POST", "api/sim/launches", body);
  }
}
