// Drawing the frame and its boxes on two stacked canvases.
//
// The image layer holds only the picture and is moved by the compositor (imagelayer.js);
// brightness/contrast are a CSS filter on it, so they never tint the boxes. The box layer
// is redrawn on top, on requestAnimationFrame and only when something changed. Boxes are
// batched into one path per style: a thousand boxes cost a few stroke calls, not a
// thousand DOM nodes.

import { handlePoints } from "./geometry.js";
import { ImageLayer } from "./imagelayer.js";
import { Status } from "./store.js";

const PROPOSAL_DASH = [6, 4];
const DRAFT_COLOUR = "#ffffff";
const UNLABELLED_COLOUR = "#9ca3af";
const HANDLE_SIZE = 8;
// Name tags cost a text draw each; past this many boxes in view only the selected one gets one.
const MAX_TAGGED_BOXES = 250;
// With this many boxes, rasterising them costs more than a frame in software rendering, so
// during a drag-pan or wheel-zoom the drawn layer is moved by the compositor and redrawn
// once the view has been still for SETTLE_MS (boxes entering from the edges appear then).
const LIVE_TRANSFORM_MIN_BOXES = 300;
const SETTLE_MS = 150;

export class FrameRenderer {
  preview = null; // [x1, y1, x2, y2] of a box being drawn
  hoverKey = null;
  #dirty = false;
  #frameRequest = 0;
  #drawnView = null; // the viewport the box layer was last drawn for
  #moving = false;
  #settleTimer = 0;

  constructor({ imageCanvas, boxCanvas, viewport, store, labelOf, metrics }) {
    Object.assign(this, { imageCanvas, boxCanvas, viewport, store, labelOf, metrics });
    this.imageLayer = new ImageLayer(imageCanvas, () => this.requestDraw());
    this.boxContext = boxCanvas.getContext("2d");
    new ResizeObserver(() => this.resize()).observe(boxCanvas.parentElement);
  }

  get width() {
    return this.boxCanvas.clientWidth;
  }

  get height() {
    return this.boxCanvas.clientHeight;
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const before = { width: this.boxCanvas.width / ratio, height: this.boxCanvas.height / ratio };
    this.boxCanvas.width = Math.round(this.boxCanvas.clientWidth * ratio);
    this.boxCanvas.height = Math.round(this.boxCanvas.clientHeight * ratio);
    if (this.viewport.fitted) {
      this.fit();
    } else {
      // Keep what was in the middle of the view in the middle.
      this.viewport.offsetX += (this.width - before.width) / 2;
      this.viewport.offsetY += (this.height - before.height) / 2;
    }
    this.requestDraw();
  }

  /** The frame's decoded picture (an ImageBitmap), or null for none. */
  setImage(bitmap) {
    this.imageLayer.setImage(bitmap);
    this.requestDraw();
  }

  fit() {
    const frame = this.store.frame;
    if (frame) this.viewport.fit(frame.width, frame.height, this.width, this.height);
    this.requestDraw();
  }

  /** Draw on the next animation frame; ``onDrawn`` runs once that frame is on the canvas. */
  requestDraw(onDrawn) {
    this.#dirty = true;
    if (onDrawn) this.metrics.afterDraw.push(onDrawn);
    if (!this.#frameRequest) this.#frameRequest = requestAnimationFrame(() => this.#drawFrame());
  }

  /** The view is being dragged or wheeled: redraw now, or (with many boxes) move what is drawn. */
  viewMoving() {
    if (this.store.boxes.size >= LIVE_TRANSFORM_MIN_BOXES && this.#drawnView) {
      this.#moving = true;
      clearTimeout(this.#settleTimer);
      this.#settleTimer = setTimeout(() => {
        this.#moving = false;
        this.requestDraw();
      }, SETTLE_MS);
    }
    this.requestDraw();
  }

  #drawFrame() {
    this.#frameRequest = 0;
    if (!this.#dirty) return;
    this.#dirty = false;
    const started = performance.now();
    this.imageLayer.update(this.viewport);
    if (this.#moving) {
      this.#moveDrawnBoxes();
    } else {
      this.boxCanvas.style.transform = "";
      this.#drawBoxes();
      this.#drawnView = { scale: this.viewport.scale, offsetX: this.viewport.offsetX, offsetY: this.viewport.offsetY };
    }
    this.metrics.frameDrawn(performance.now() - started);
  }

  #moveDrawnBoxes() {
    const drawn = this.#drawnView;
    const stretch = this.viewport.scale / drawn.scale;
    const x = this.viewport.offsetX - drawn.offsetX * stretch;
    const y = this.viewport.offsetY - drawn.offsetY * stretch;
    this.boxCanvas.style.transform = `matrix(${stretch}, 0, 0, ${stretch}, ${x}, ${y})`;
  }

  #drawBoxes() {
    const context = this.boxContext;
    const ratio = window.devicePixelRatio || 1;
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, this.width, this.height);
    if (!this.store.frame) return;
    const { scale, offsetX, offsetY } = this.viewport;
    const groups = new Map();
    const visible = [];
    for (const box of this.store.boxes.values()) {
      const left = box.box[0] * scale + offsetX;
      const top = box.box[1] * scale + offsetY;
      const right = box.box[2] * scale + offsetX;
      const bottom = box.box[3] * scale + offsetY;
      if (right < 0 || bottom < 0 || left > this.width || top > this.height) continue;
      const style = this.#styleOf(box);
      const styleKey = `${style.colour}|${style.dashed}`;
      let group = groups.get(styleKey);
      if (!group) groups.set(styleKey, (group = { ...style, rects: [] }));
      group.rects.push(left, top, right - left, bottom - top);
      visible.push({ box, screen: [left, top, right, bottom], style });
    }
    context.lineWidth = 2;
    for (const group of groups.values()) {
      context.strokeStyle = group.colour;
      context.setLineDash(group.dashed ? PROPOSAL_DASH : []);
      context.beginPath();
      for (let index = 0; index < group.rects.length; index += 4) {
        context.rect(group.rects[index], group.rects[index + 1], group.rects[index + 2], group.rects[index + 3]);
      }
      context.stroke();
    }
    context.setLineDash([]);
    const tagAll = visible.length <= MAX_TAGGED_BOXES;
    context.font = "12px system-ui, sans-serif";
    context.textBaseline = "bottom";
    for (const entry of visible) {
      const emphasised = entry.box.key === this.store.selectedKey || entry.box.key === this.hoverKey;
      if (emphasised) this.#drawEmphasis(entry);
      if (tagAll || emphasised) this.#drawTag(entry);
    }
    if (this.preview) this.#drawPreview();
  }

  #styleOf(box) {
    if (box.isDraft) return { colour: DRAFT_COLOUR, dashed: true };
    const label = this.labelOf(box.labelId);
    return { colour: label ? label.color : UNLABELLED_COLOUR, dashed: box.status === Status.PROPOSED };
  }

  #drawEmphasis({ box, screen: [left, top, right, bottom], style }) {
    const context = this.boxContext;
    const selected = box.key === this.store.selectedKey;
    context.globalAlpha = selected ? 0.18 : 0.08;
    context.fillStyle = style.colour;
    context.fillRect(left, top, right - left, bottom - top);
    context.globalAlpha = 1;
    context.lineWidth = selected ? 3 : 2.5;
    context.strokeStyle = style.colour;
    context.setLineDash(style.dashed ? PROPOSAL_DASH : []);
    context.strokeRect(left, top, right - left, bottom - top);
    context.setLineDash([]);
    if (!selected) return;
    context.fillStyle = "#ffffff";
    context.strokeStyle = "#111827";
    context.lineWidth = 1;
    for (const [x, y] of Object.values(handlePoints([left, top, right, bottom]))) {
      context.fillRect(x - HANDLE_SIZE / 2, y - HANDLE_SIZE / 2, HANDLE_SIZE, HANDLE_SIZE);
      context.strokeRect(x - HANDLE_SIZE / 2, y - HANDLE_SIZE / 2, HANDLE_SIZE, HANDLE_SIZE);
    }
  }

  #drawTag({ box, screen: [left, top], style }) {
    const text = tagText(box, this.labelOf(box.labelId));
    const context = this.boxContext;
    const width = context.measureText(text).width + 8;
    const y = top > 18 ? top : top + 18;
    context.fillStyle = box.status === Status.PROPOSED || box.isDraft ? "rgba(17, 24, 39, 0.85)" : style.colour;
    context.fillRect(left, y - 17, width, 17);
    context.fillStyle = box.status === Status.PROPOSED || box.isDraft ? style.colour : "#0b1020";
    context.fillText(text, left + 4, y - 2);
  }

  #drawPreview() {
    const [x1, y1] = this.viewport.toScreen(this.preview[0], this.preview[1]);
    const [x2, y2] = this.viewport.toScreen(this.preview[2], this.preview[3]);
    const context = this.boxContext;
    context.strokeStyle = DRAFT_COLOUR;
    context.lineWidth = 1.5;
    context.setLineDash([4, 3]);
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    context.setLineDash([]);
  }
}

function tagText(box, label) {
  if (box.isDraft) return "unlabelled: pick a label";
  const name = label ? label.name : "no label";
  if (box.status !== Status.PROPOSED) return name;
  return box.score === null || box.score === undefined ? `${name}?` : `${name}? ${Math.round(box.score * 100)}%`;
}
