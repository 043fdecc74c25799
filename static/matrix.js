/* One head's full matrix with the tokens along both axes: what the focused view shows and the focused PNG
   prints. Each MatrixPainter keeps its own one-pixel-per-cell heatmap, so the view and a download never share
   (or overwrite) each other's picture. */

import { Heatmap } from "./heatmap.js";
import { shortToken } from "./attention.js";

const LABEL_MAX_PX = 120;  // token labels are cut to this width
const LABEL_CHARS = 14;
const INDEX_ROOM_PX = 40;  // beside each token label, its index
const PROBE_INK = "#b00020";
const AXIS_INK = "#222";

export class MatrixPainter {
  constructor() {
    this.heatmap = new Heatmap(document.createElement("canvas"));  // the head at one pixel per cell
    this.painted = "";  // what the heatmap holds, so a hover repaints the labels, not the cells
  }

  /** Sizes for a matrix of `tokens` at `cell` px: label margins (left = top) and the whole drawing. */
  geometry(context, tokens, cell) {
    const fontSize = Math.max(9, Math.min(12, cell - 1));
    const font = `${fontSize}px system-ui, sans-serif`;
    context.font = font;
    const widest = Math.max(0, ...tokens.map((token) => context.measureText(shortToken(token, LABEL_CHARS)).width));
    const margin = Math.ceil(Math.min(LABEL_MAX_PX, widest)) + INDEX_ROOM_PX;
    const step = Math.max(1, Math.ceil((fontSize + 1) / cell));  // label every step-th token so labels never overlap
    const size = margin + tokens.length * cell + 2;
    return { cell, margin, step, font, fontSize, width: size, height: size };
  }

  /** Paint `matrix` (n × n shown values, n = tokens.length) at (0, 0) of `context`, labels on both axes; `key`
   *  names the matrix, so the same one is not recoloured on every hover. */
  paint(context, geometry, { matrix, key, tokens, probe }) {
    const { cell, margin, step, font } = geometry;
    const n = tokens.length;
    if (this.painted !== key) {
      this.heatmap.data(matrix, n).max(1).draw();
      this.painted = key;
    }
    context.fillStyle = "#fff";
    context.fillRect(0, 0, geometry.width, geometry.height);
    context.imageSmoothingEnabled = false;
    context.drawImage(this.heatmap.canvas, margin, margin, n * cell, n * cell);
    context.font = font;
    context.textBaseline = "middle";
    for (let index = 0; index < n; index++) {
      const queryProbed = probe && index === probe.query;
      const keyProbed = probe && index === probe.key;
      if (index % step !== 0 && !queryProbed && !keyProbed) continue;
      const name = `${shortToken(tokens[index], LABEL_CHARS)} ${index}`;
      const centre = margin + index * cell + cell / 2;
      context.fillStyle = queryProbed ? PROBE_INK : AXIS_INK;
      context.textAlign = "right";
      context.fillText(name, margin - 4, centre, margin - 6);
      context.save();
      context.translate(centre, margin - 4);
      context.rotate(-Math.PI / 2);
      context.fillStyle = keyProbed ? PROBE_INK : AXIS_INK;
      context.textAlign = "left";
      context.fillText(name, 0, 0, margin - 6);
      context.restore();
    }
    context.fillStyle = "#555";
    context.textAlign = "left";
    context.fillText("query ↓  key →", 4, 10);
    if (probe) {
      context.lineWidth = 1;
      context.strokeStyle = "rgba(255,255,255,0.9)";
      context.strokeRect(margin + 0.5, margin + probe.query * cell + 0.5, n * cell - 1, cell - 1);
      context.strokeRect(margin + probe.key * cell + 0.5, margin + 0.5, cell - 1, n * cell - 1);
      context.lineWidth = 2;
      context.strokeStyle = "#ff2d55";
      context.strokeRect(margin + probe.key * cell, margin + probe.query * cell, cell, cell);
    }
  }
}
