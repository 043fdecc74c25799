/* The attention numbers on the client: decode the server's packed triangles, read single values, and build the
   rows and (possibly downsampled) matrices the heatmaps paint, raw or sink-aware. The sink-aware
   renormalisation lives here and nowhere else on the page. No DOM (tests/js/attention.test.mjs). */

export const PACKED_ENCODING = "uint16-tril-base64";
// What a shown cell can hold besides a probability in [0, 1]; all compare false with `>= 0`.
export const MASKED = NaN;  // a later token: the causal mask hides it
export const SET_ASIDE = -1;  // the first column, set aside in the sink-aware view
export const EMPTY_ROW = -2;  // sink-aware: a row with (almost) nothing off the first token, a "pure sink" row
const POOLED_CACHE_CELLS = 8_000_000;  // 32 MB of painted matrices: many layers of thumbnails, a few big focused heads
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;  // the packed data is little-endian

export class AttentionStore {
  /** Every head of the layers fetched so far, as each head's lower triangle of uint16 (row q: keys 0..q).
   *  `emptyRowMass` is the server's: below it a row's mass off the first token says nothing. */
  constructor(nHead, nTokens, emptyRowMass) {
    this.nHead = nHead;
    this.nTokens = nTokens;
    this.emptyRowMass = emptyRowMass;
    this.triangle = (nTokens * (nTokens + 1)) / 2;  // values per head
    this.layers = new Map();  // layer -> { values: Uint16Array(H * triangle), scale }
    this.pooledCache = new Map();  // LRU of the matrices the page paints, bounded by POOLED_CACHE_CELLS
    this.pooledCells = 0;
  }

  has(layer) {
    return this.layers.has(layer);
  }

  /** Add the layers of one API response (`attention_packed` with its `attention_layers`). */
  add(packed, layerIndices) {
    if (packed.encoding !== PACKED_ENCODING) throw new Error(`unknown attention encoding ${packed.encoding}`);
    const [nLayers, nHead, nTokens] = packed.shape;  // (L', H, T, T)
    console.assert(nHead === this.nHead && nTokens === this.nTokens && nLayers === layerIndices.length);
    const all = decodeUint16(packed.data);
    const perLayer = nHead * this.triangle;
    console.assert(all.length === nLayers * perLayer, "packed attention has the wrong length");
    layerIndices.forEach((layer, index) => {
      this.layers.set(layer, { values: all.subarray(index * perLayer, (index + 1) * perLayer), scale: packed.scale });
    });
  }

  /** The probability head `head` of `layer` gives key `key` from query `query` (0 above the diagonal). */
  value(layer, head, query, key) {
    if (key > query) return 0;
    const { values, scale } = this.layers.get(layer);
    return values[head * this.triangle + (query * (query + 1)) / 2 + key] / scale;
  }

  /** Row `query`'s probabilities (keys 0..query): raw, or sink-aware: the first key's share set to 0 and the
   *  rest rescaled to sum to 1 (all 0 when there is nothing to rescale). What numbers are computed from. */
  row(layer, head, query, sinkAware) {
    const raw = this.rawRow(layer, head, query);
    return sinkAware ? withoutFirst(raw, this.emptyRowMass) ?? new Float32Array(raw.length) : raw;
  }

  /** Row `query` as painted: `row`, with the sink-aware view's non-values marked: SET_ASIDE for the first key,
   *  EMPTY_ROW for every other key of a row that had nothing off the first one. */
  shownRow(layer, head, query, sinkAware) {
    const raw = this.rawRow(layer, head, query);
    if (!sinkAware) return raw;
    const shown = withoutFirst(raw, this.emptyRowMass) ?? new Float32Array(raw.length).fill(EMPTY_ROW);
    shown[0] = SET_ASIDE;
    return shown;
  }

  rawRow(layer, head, query) {
    const { values, scale } = this.layers.get(layer);
    const start = head * this.triangle + (query * (query + 1)) / 2;
    const row = new Float32Array(query + 1);
    for (let key = 0; key <= query; key++) row[key] = values[start + key] / scale;
    return row;
  }

  /** An n × n matrix (n <= T) for painting: each cell the largest value of the block of cells it covers, so a
   *  thin diagonal stays visible when a long sentence is shrunk. Non-values rank below every probability
   *  (MASKED lowest), so a block shows a probability if it has one. */
  pooled(layer, head, sinkAware, n) {
    const cacheKey = `${layer}/${head}/${sinkAware}/${n}`;
    const cached = this.pooledCache.get(cacheKey);
    if (cached) {
      this.pooledCache.delete(cacheKey);  // most recently used goes last
      this.pooledCache.set(cacheKey, cached);
      return cached;
    }
    const rows = Array.from({ length: this.nTokens }, (_, query) => this.shownRow(layer, head, query, sinkAware));
    const matrix = poolRows(rows, n);
    this.pooledCache.set(cacheKey, matrix);
    this.pooledCells += matrix.length;
    for (const [oldKey, old] of this.pooledCache) {
      if (this.pooledCells <= POOLED_CACHE_CELLS || old === matrix) break;
      this.pooledCache.delete(oldKey);
      this.pooledCells -= old.length;
    }
    return matrix;
  }

  /** The `count` keys query `query` attends to most, largest first, leaving out keys with nothing (they would
   *  read as "0.0000"): [{key, value}]. */
  topKeys(layer, head, query, sinkAware, count) {
    const row = this.row(layer, head, query, sinkAware);
    return Array.from(row, (value, key) => ({ key, value }))
      .filter(({ value }) => value >= SHOWN_MINIMUM)
      .sort((a, b) => b.value - a.value || a.key - b.key)
      .slice(0, count);
  }
}

/** A token as the page shows it: spaces, tabs and newlines made visible, since " world" is not "world". */
export function visibleToken(token) {
  return token.replace(/ /g, "␣").replace(/\t/g, "⇥").replace(/\r?\n/g, "↵");
}

/** `visibleToken`, shortened to `limit` characters for tight places (axes, chips in a list). */
export function shortToken(token, limit = 12) {
  const shown = Array.from(visibleToken(token));
  return shown.length > limit ? `${shown.slice(0, limit - 1).join("")}…` : shown.join("");
}

// ---- pure helpers ----

const SHOWN_MINIMUM = 0.00005;  // rounds to 0.0001 at the four decimals the page prints

/** The sink-aware renormalisation, the page's only one: the row without its first key (set to 0), the others
 *  rescaled to sum to 1; null when no more than `emptyRowMass` is off the first key (nothing to rescale). */
export function withoutFirst(row, emptyRowMass) {
  let rest = 0;
  for (let key = 1; key < row.length; key++) rest += row[key];
  if (!(rest > emptyRowMass)) return null;
  const shown = new Float32Array(row.length);
  for (let key = 1; key < row.length; key++) shown[key] = row[key] / rest;
  return shown;
}

/** Rows of a causal matrix (row q has q + 1 values) max-pooled to n × n; MASKED where no value falls. */
export function poolRows(rows, n) {
  const matrix = new Float32Array(n * n).fill(MASKED);
  const bin = binIndex(rows.length, n);
  rows.forEach((row, query) => {
    const offset = bin[query] * n;
    for (let key = 0; key < row.length; key++) {
      const value = row[key];
      const at = offset + bin[key];
      if (!(matrix[at] >= value)) matrix[at] = value;  // NaN compares false: any value replaces MASKED
    }
  });
  return matrix;
}

function binIndex(T, n) {  // token index -> pixel index, n <= T
  return Int32Array.from({ length: T }, (_, index) => Math.floor((index * n) / T));
}

/** base64 of little-endian uint16 → Uint16Array, on either byte order. */
export function decodeUint16(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let at = 0; at < binary.length; at++) bytes[at] = binary.charCodeAt(at);
  if (LITTLE_ENDIAN) return new Uint16Array(bytes.buffer, 0, bytes.length / 2);
  const values = new Uint16Array(bytes.length / 2);
  for (let at = 0; at < values.length; at++) values[at] = bytes[2 * at] | (bytes[2 * at + 1] << 8);
  return values;
}
