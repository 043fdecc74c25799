/* A small canvas heatmap in the manner of simpleheat: one object, chainable setters, only draw() paints.
   The colour lookup table (viridis: perceptually uniform, readable with every common colour-vision
   deficiency, and in greyscale) is built once, when this module is imported. No DOM is touched on import, so
   the lookup is tested under node (tests/js/heatmap.test.mjs). */

import { EMPTY_ROW, SET_ASIDE } from "./attention.js";

// viridis at 0, 0.1, …, 1 (matplotlib's table); 256 steps are interpolated between these.
const VIRIDIS_STOPS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
                       "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"];
const LUT_SIZE = 256;
// Cells that hold no probability, each with its own colour outside viridis (style.css repeats them for the key).
export const MASKED_RGB = [224, 224, 224];  // a future token: the causal mask
export const SET_ASIDE_RGB = [240, 196, 140];  // the first column, set aside by "hide the first column"
export const EMPTY_ROW_RGB = [253, 240, 224];  // a pure-sink row: nothing is left once the first column is aside
export const VIRIDIS = buildLut(VIRIDIS_STOPS, LUT_SIZE);  // Uint8ClampedArray(256 × 3)

export class Heatmap {
  /** Paints an n × n matrix onto `canvas` at one pixel per cell; callers scale it up with smoothing off. */
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.values = null;  // Float32Array n * n, row-major (query, key); NaN, SET_ASIDE, EMPTY_ROW mark non-values
    this.n = 0;
    this.maximum = 1;
    this.pixelsOf = LUT_PIXELS;
    this.image = null;  // ImageData n × n, kept while n is: every draw writes each of its pixels
    this.pixels = null;  // Uint32Array over this.image's bytes
  }

  data(values, n) {
    console.assert(values.length === n * n, "heatmap: values must be n * n");
    this.values = values;
    this.n = n;
    return this;
  }

  max(maximum) {
    this.maximum = maximum;
    return this;
  }

  /** Another colour table (LUT_SIZE × 3 bytes), e.g. a diverging one for differences. */
  colours(lut) {
    this.pixelsOf = rgbaPixels(lut);
    return this;
  }

  draw() {
    const { n, values, maximum, pixelsOf } = this;
    if (this.canvas.width !== n) this.canvas.width = n;
    if (this.canvas.height !== n) this.canvas.height = n;
    if (n === 0) return this;
    if (!this.image || this.image.width !== n) {
      this.image = this.context.createImageData(n, n);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    const { pixels } = this;
    for (let cell = 0; cell < n * n; cell++) {
      const value = values[cell];
      pixels[cell] = value >= 0 ? pixelsOf[lutIndex(value, maximum)] : SPECIAL_PIXELS[specialOf(value)];
    }
    this.context.putImageData(this.image, 0, 0);
    return this;
  }
}

/** The colour scale as a horizontal bar, 0 on the left: the legend shared by every heatmap on the page. */
export function drawColourBar(canvas, width = LUT_SIZE, height = 1) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let x = 0; x < width; x++) {
    const rgb = colourOf(x / (width - 1));
    for (let y = 0; y < height; y++) image.data.set([...rgb, 255], (y * width + x) * 4);
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** [r, g, b] of a shown value on the shared scale: a probability in [0, maximum], or one of the non-values. */
export function colourOf(value, maximum = 1) {
  if (!(value >= 0)) return [MASKED_RGB, SET_ASIDE_RGB, EMPTY_ROW_RGB][specialOf(value)];
  const index = lutIndex(value, maximum) * 3;
  return [VIRIDIS[index], VIRIDIS[index + 1], VIRIDIS[index + 2]];
}

/** CSS colour of `colourOf` (for single cells drawn outside a heatmap). */
export function cssColour(value, maximum = 1) {
  return `rgb(${colourOf(value, maximum).join(",")})`;
}

// ---- pure helpers ----

function specialOf(value) {  // NaN → 0 (masked), SET_ASIDE → 1, EMPTY_ROW → 2
  return value === SET_ASIDE ? 1 : value === EMPTY_ROW ? 2 : 0;
}

export function lutIndex(value, maximum) {
  const scaled = Math.round((value / maximum) * (LUT_SIZE - 1));
  return scaled < 0 ? 0 : scaled > LUT_SIZE - 1 ? LUT_SIZE - 1 : scaled;
}

export function rgbaPixels(rgb) {  // [r, g, b, r, g, b, …] → opaque pixels, bytes in ImageData order
  const pixels = new Uint32Array(rgb.length / 3);
  const bytes = new Uint8ClampedArray(pixels.buffer);
  for (let at = 0; at < pixels.length; at++) bytes.set([rgb[3 * at], rgb[3 * at + 1], rgb[3 * at + 2], 255], 4 * at);
  return pixels;
}

export function buildLut(stops, size) {
  const rgb = stops.map((hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16)));
  const lut = new Uint8ClampedArray(size * 3);
  for (let step = 0; step < size; step++) {
    const position = (step / (size - 1)) * (rgb.length - 1);
    const low = Math.min(Math.floor(position), rgb.length - 2);
    const mix = position - low;
    for (let channel = 0; channel < 3; channel++) {
      lut[step * 3 + channel] = rgb[low][channel] * (1 - mix) + rgb[low + 1][channel] * mix;
    }
  }
  return lut;
}

// The same colours as whole RGBA pixels in the machine's byte order: draw() stores one 32-bit word per cell.
const LUT_PIXELS = rgbaPixels(VIRIDIS);  // Uint32Array(256)
const SPECIAL_PIXELS = rgbaPixels([...MASKED_RGB, ...SET_ASIDE_RGB, ...EMPTY_ROW_RGB]);
