// Prices per pair and venue over time, from GET /api/markets when the server has it, else from
// GET /api/quotes (a quote for one unit of the pair's base token on every venue).

const QUOTE_RANK = ["USDC", "USDT", "SOL", "JUP", "RAY", "BONK"];
const KEEP_MS = 3 * 60 * 1000;
const MAX_QUOTE_PAIRS = 4;

function rank(token) {
  const i = QUOTE_RANK.indexOf(String(token).toUpperCase());
  return i < 0 ? QUOTE_RANK.length : i;
}

// Every pair is shown one way round: price of the base in the more quote-like token (USDC per
// SOL, SOL per launched token). ``inverted`` says an order's tokenOut-per-tokenIn price is 1/x.
export function canonicalPair(tokenIn, tokenOut) {
  if (rank(tokenOut) <= rank(tokenIn)) return { base: tokenIn, quote: tokenOut, inverted: false };
  return { base: tokenOut, quote: tokenIn, inverted: true };
}

export function pairKey(base, quote) {
  return `${base}/${quote}`;
}

// A pool's depth in its quote token: GET /api/markets gives {base, quote} in token units.
function liquidityText(liquidity, quoteName, inverted) {
  const amount = Number(inverted ? liquidity.base : liquidity.quote);
  if (!Number.isFinite(amount)) return null;
  const shown = amount.toLocaleString("en-US", { maximumFractionDigits: amount >= 100 ? 0 : 2 });
  return `${shown} ${String(quoteName).length > 12 ? "" : quoteName}`.trim();
}

// GET /api/markets as the OpenAPI document gives it (MarketsResponse): {slot, markets: [{base,
// quote: {symbol, mint, decimals}, venues: [{venue, pool, price, liquidity: {base, quote}, open,
// openSlot}], launch}]}, prices as decimal strings (quote per base). A pool not yet open has no
// price to draw.
export function normalizeMarkets(data) {
  const rows = [];
  for (const market of data.markets) {
    const canon = canonicalPair(market.base.symbol, market.quote.symbol);
    const venues = [];
    for (const v of market.venues) {
      const price = Number(v.price);
      if (!v.open || !Number.isFinite(price) || price <= 0) continue;
      venues.push({ venue: v.venue, price: canon.inverted ? 1 / price : price,
        liquidity: liquidityText(v.liquidity, canon.inverted ? canon.base : canon.quote, canon.inverted) });
    }
    rows.push({ base: canon.base, quote: canon.quote, venues });
  }
  return rows;
}

export class Prices {
  constructor(api, onUpdate) {
    this.api = api;
    this.onUpdate = onUpdate;
    this.series = new Map(); // pair → Map venue → [{t, p}]
    this.liquidity = new Map(); // pair → Map venue → liquidity
    this.pairs = new Map(); // pair → {base, quote}
    this.source = null;
    this.marketsAvailable = null;
    this.timer = null;
    this.busy = false;
  }

  start(interval = 2000, wanted = () => []) {
    this.wanted = wanted;
    clearInterval(this.timer);
    this.poll();
    this.timer = setInterval(() => this.poll(), interval);
  }

  stop() {
    clearInterval(this.timer);
  }

  addPair(base, quote) {
    const key = pairKey(base, quote);
    if (!this.pairs.has(key)) this.pairs.set(key, { base, quote });
    return key;
  }

  record(key, venue, price, t, liquidity = null) {
    if (!this.series.has(key)) this.series.set(key, new Map());
    const byVenue = this.series.get(key);
    if (!byVenue.has(venue)) byVenue.set(venue, []);
    const values = byVenue.get(venue);
    values.push({ t, p: price });
    while (values.length && values[0].t < t - KEEP_MS) values.shift();
    if (liquidity !== null && liquidity !== undefined) {
      if (!this.liquidity.has(key)) this.liquidity.set(key, new Map());
      this.liquidity.get(key).set(venue, liquidity);
    }
  }

  async poll() {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.marketsAvailable !== false && (await this.fromMarkets())) return;
      await this.fromQuotes();
    } finally {
      this.busy = false;
      this.onUpdate();
    }
  }

  async fromMarkets() {
    try {
      const { data } = await this.api.markets();
      const now = Date.now();
      for (const row of normalizeMarkets(data)) {
        const key = this.addPair(row.base, row.quote);
        for (const v of row.venues) this.record(key, v.venue, v.price, now, v.liquidity);
      }
      this.marketsAvailable = true;
      this.source = "markets";
      return true;
    } catch (err) {
      if (err.unavailable) this.marketsAvailable = false;
      return false;
    }
  }

  async fromQuotes() {
    const keys = [...new Set(this.wanted())].slice(0, MAX_QUOTE_PAIRS);
    const now = Date.now();
    await Promise.all(keys.map(async (key) => {
      const { base, quote } = this.pairs.get(key) || {};
      if (!base) return;
      try {
        const { data } = await this.api.quotes(base, quote, "1");
        for (const q of data.quotes || []) {
          const price = Number(q.amountOut);
          if (Number.isFinite(price) && price > 0) this.record(key, q.venue, price, now);
        }
        this.source = "quotes";
      } catch (err) {
        // A token the quote route does not know (a launched mint) has no price here.
      }
    }));
  }

  latest(key) {
    const out = [];
    for (const [venue, values] of this.series.get(key) || []) {
      if (values.length === 0) continue;
      const liquidity = this.liquidity.get(key)?.get(venue) ?? null;
      out.push({ venue, price: values[values.length - 1].p, liquidity });
    }
    return out;
  }
}
