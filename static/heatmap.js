/* A small canvas heatmap in the manner of simpleheat: one object, chainable setters, only draw() paints.
   The colour lookup table (viridis: perceptually uniform, readable with every common colour-vision
   deficiency, and in greyscale) is built once, when this module is imported. */

// viridis at 0, 0.1, …, 1 (matplotlib's table); 256 steps are interpolated between these.
const VIRIDIS_STOPS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
                       "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"];
const LUT_SIZE = 256;
export const MASKED_RGB = [224, 224, 224];  // a future token (causal mask) or the hidden first column: not a zero
export const LUT = buildLut(VIRIDIS_STOPS, LUT_SIZE);  // Uint8ClampedArray(256 × 3)

export class Heatmap {
  /** Paints an n × n matrix onto `canvas` at one pixel per cell; callers scale it up with smoothing off. */
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.values = null;  // Float32Array n * n, row-major (query, key); NaN marks a masked cell
    this.n = 0;
    this.maximum = 1;
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

  draw() {
    const { n, values, maximum } = this;
    if (this.canvas.width !== n) this.canvas.width = n;
    if (this.canvas.height !== n) this.canvas.height = n;
    if (n === 0) return this;
    const image = this.context.createImageData(n, n);
    const pixels = image.data;
    for (let cell = 0; cell < n * n; cell++) {
      const value = values[cell];
      const at = cell * 4;
      if (Number.isNaN(value)) {
        pixels[at] = MASKED_RGB[0]; pixels[at + 1] = MASKED_RGB[1]; pixels[at + 2] = MASKED_RGB[2];
      } else {
        const index = lutIndex(value, maximum) * 3;
        pixels[at] = LUT[index]; pixels[at + 1] = LUT[index + 1]; pixels[at + 2] = LUT[index + 2];
      }
      pixels[at + 3] = 255;
    }
    this.context.putImageData(image, 0, 0);
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
    const index = lutIndex(x / (width - 1), 1) * 3;
    for (let y = 0; y < height; y++) {
      const at = (y * width + x) * 4;
      image.data.set([LUT[index], LUT[index + 1], LUT[index + 2], 255], at);
    }
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** CSS colour of `value` on the shared scale (for single cells drawn outside a heatmap). */
export function cssColour(value, maximum = 1) {
  if (Number.isNaN(value)) return `rgb(${MASKED_RGB.join(",")})`;
  const index = lutIndex(value, maximum) * 3;
  return `rgb(${LUT[index]},${LUT[index + 1]},${LUT[index + 2]})`;
}

// ---- pure helpers ----

function lutIndex(value, maximum) {
  const scaled = Math.round((value / maximum) * (LUT_SIZE - 1));
  return scaled < 0 ? 0 : scaled > LUT_SIZE - 1 ? LUT_SIZE - 1 : scaled;
}

function buildLut(stops, size) {
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
