/* The attention numbers on the client: decode the server's packed triangles, read single values, build the
   (possibly downsampled, possibly sink-renormalised) matrices that the heatmaps paint. No DOM here. */

export const PACKED_ENCODING = "uint16-tril-base64";
export const EMPTY_ROW_MASS = 1e-6;  // as the server: a row with less mass off the first token says nothing
const POOLED_CACHE_CELLS = 8_000_000;  // 32 MB of painted matrices: many layers of thumbnails, a few big focused heads
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;  // the packed data is little-endian

export class AttentionStore {
  /** Every head of the layers fetched so far, as each head's lower triangle of uint16 (row q: keys 0..q). */
  constructor(nHead, nTokens) {
    this.nHead = nHead;
    this.nTokens = nTokens;
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

  /** Row `query` as shown: raw, or (sink-aware) without the first key and renormalised; NaN where hidden. */
  row(layer, head, query, sinkAware) {
    const { values, scale } = this.layers.get(layer);
    const start = head * this.triangle + (query * (query + 1)) / 2;
    const row = new Float32Array(query + 1);
    for (let key = 0; key <= query; key++) row[key] = values[start + key] / scale;
    return sinkAware ? renormaliseWithoutFirst(row) : row;
  }

  /** An n × n matrix (n <= T) for painting: each cell the largest value of the block of cells it covers, so a
   *  thin diagonal stays visible when a long sentence is shrunk; NaN where every covered cell is masked. */
  pooled(layer, head, sinkAware, n) {
    const cacheKey = `${layer}/${head}/${sinkAware}/${n}`;
    const cached = this.pooledCache.get(cacheKey);
    if (cached) {
      this.pooledCache.delete(cacheKey);  // most recently used goes last
      this.pooledCache.set(cacheKey, cached);
      return cached;
    }
    const T = this.nTokens;
    const matrix = new Float32Array(n * n).fill(NaN);
    const bin = binIndex(T, n);
    for (let query = 0; query < T; query++) {
      const row = this.row(layer, head, query, sinkAware);
      const offset = bin[query] * n;
      for (let key = 0; key <= query; key++) {
        const value = row[key];
        if (Number.isNaN(value)) continue;
        const at = offset + bin[key];
        if (!(matrix[at] >= value)) matrix[at] = value;  // NaN compares false: the first value replaces it
      }
    }
    this.pooledCache.set(cacheKey, matrix);
    this.pooledCells += matrix.length;
    for (const [oldKey, old] of this.pooledCache) {
      if (this.pooledCells <= POOLED_CACHE_CELLS || old === matrix) break;
      this.pooledCache.delete(oldKey);
      this.pooledCells -= old.length;
    }
    return matrix;
  }

  /** The `count` keys query `query` attends to most, largest first: [{key, value}]. */
  topKeys(layer, head, query, sinkAware, count) {
    const row = this.row(layer, head, query, sinkAware);
    return Array.from(row, (value, key) => ({ key, value }))
      .filter(({ value }) => !Number.isNaN(value))
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
  const shown = visibleToken(token);
  return shown.length > limit ? `${shown.slice(0, limit - 1)}…` : shown;
}

// ---- pure helpers ----

function renormaliseWithoutFirst(row) {
  let rest = 0;
  for (let key = 1; key < row.length; key++) rest += row[key];
  const shown = new Float32Array(row.length);
  shown[0] = NaN;
  for (let key = 1; key < row.length; key++) shown[key] = rest > EMPTY_ROW_MASS ? row[key] / rest : 0;
  return shown;
}

function binIndex(T, n) {  // token index -> pixel index, n <= T
  return Int32Array.from({ length: T }, (_, index) => Math.floor((index * n) / T));
}

function decodeUint16(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let at = 0; at < binary.length; at++) bytes[at] = binary.charCodeAt(at);
  if (LITTLE_ENDIAN) return new Uint16Array(bytes.buffer, 0, bytes.length / 2);
  const values = new Uint16Array(bytes.length / 2);
  for (let at = 0; at < values.length; at++) values[at] = bytes[2 * at] | (bytes[2 * at + 1] << 8);
  return values;
}
