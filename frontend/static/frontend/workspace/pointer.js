// Mouse work on the frame: draw (drag, or click two corners), select, move, resize, pan, zoom.

import { boxFromCorners, dragHandle, handlePoints, isUsableBox, translateBox } from "./geometry.js";

const DRAG_THRESHOLD = 3; // screen pixels before a press counts as a drag
const HANDLE_REACH = 7;
const HANDLE_CURSORS = { nw: "nwse-resize", se: "nwse-resize", ne: "nesw-resize", sw: "nesw-resize", n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize" };

export class PointerTool {
  spaceHeld = false;
  pannedWhileSpaceHeld = false;
  #gesture = null;
  #pendingCorner = null;

  /** ``boxAt(x, y)`` -> key; ``onDraw(box)``; ``onReshape(key, from, to)``; ``onSelect(key)``. */
  constructor({ element, viewport, renderer, store, boxAt, onDraw, onReshape, onSelect }) {
    Object.assign(this, { element, viewport, renderer, store, boxAt, onDraw, onReshape, onSelect });
    element.addEventListener("pointerdown", (event) => this.#down(event));
    element.addEventListener("pointermove", (event) => this.#move(event));
    element.addEventListener("pointerup", (event) => this.#up(event));
    element.addEventListener("wheel", (event) => this.#wheel(event), { passive: false });
    element.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  /** Drop a half-drawn box; true if there was one. */
  cancel() {
    const hadOne = Boolean(this.#pendingCorner || this.#gesture?.mode === "draw");
    this.#pendingCorner = null;
    if (this.#gesture?.mode === "draw") this.#gesture = null;
    this.renderer.preview = null;
    this.renderer.requestDraw();
    return hadOne;
  }

  /** The pointer in stage coordinates (not offsetX: the box layer itself may be transformed mid-pan). */
  #at(event) {
    const stage = this.element.parentElement.getBoundingClientRect();
    return [event.clientX - stage.left, event.clientY - stage.top];
  }

  #down(event) {
    if (!this.store.frame) return;
    this.element.setPointerCapture(event.pointerId);
    const [screenX, screenY] = this.#at(event);
    const at = { screenX, screenY };
    if (event.button === 1 || event.button === 2 || (event.button === 0 && this.spaceHeld)) {
      this.#gesture = { mode: "pan", lastX: screenX, lastY: screenY };
      if (this.spaceHeld) this.pannedWhileSpaceHeld = true;
      this.element.style.cursor = "grabbing";
      return;
    }
    if (event.button !== 0) return;
    const [x, y] = this.viewport.toImage(at.screenX, at.screenY);
    if (this.#pendingCorner) {
      this.#gesture = { mode: "draw", ...at, start: this.#pendingCorner, moved: true };
      this.#pendingCorner = null;
      return;
    }
    const handle = this.#handleAt(at.screenX, at.screenY);
    if (handle) {
      const box = this.store.selected;
      this.#gesture = { mode: "resize", ...at, key: box.key, handle, from: box.box.slice(), moved: false };
      return;
    }
    const key = this.boxAt(x, y);
    if (key) {
      this.onSelect(key);
      this.#gesture = { mode: "move", ...at, key, grab: [x, y], from: this.store.get(key).box.slice(), moved: false };
      return;
    }
    const hadSelection = Boolean(this.store.selectedKey);
    if (hadSelection) this.onSelect(null);
    this.#gesture = { mode: "draw", ...at, start: [x, y], moved: false, hadSelection };
  }

  #move(event) {
    const gesture = this.#gesture;
    const frame = this.store.frame;
    if (!frame) return;
    const [screenX, screenY] = this.#at(event);
    const [x, y] = this.viewport.toImage(screenX, screenY);
    if (!gesture) {
      if (this.#pendingCorner) this.#showPreview(this.#pendingCorner, x, y);
      else this.#hover(screenX, screenY, x, y);
      return;
    }
    if (gesture.mode === "pan") {
      this.viewport.panBy(screenX - gesture.lastX, screenY - gesture.lastY);
      gesture.lastX = screenX;
      gesture.lastY = screenY;
      this.renderer.viewMoving();
      return;
    }
    if (!gesture.moved && Math.hypot(screenX - gesture.screenX, screenY - gesture.screenY) < DRAG_THRESHOLD) return;
    gesture.moved = true;
    if (gesture.mode === "draw") {
      this.#showPreview(gesture.start, x, y);
      return;
    }
    const box = this.store.get(gesture.key);
    if (!box) return;
    // The box follows the pointer without a store change per move; the command on release records it.
    box.box =
      gesture.mode === "move"
        ? translateBox(gesture.from, x - gesture.grab[0], y - gesture.grab[1], frame.width, frame.height)
        : dragHandle(gesture.from, gesture.handle, x, y, frame.width, frame.height);
    this.renderer.requestDraw();
  }

  #up(event) {
    const gesture = this.#gesture;
    this.#gesture = null;
    this.element.style.cursor = "";
    if (!gesture || gesture.mode === "pan") return;
    const frame = this.store.frame;
    if (gesture.mode === "draw") {
      this.renderer.preview = null;
      this.renderer.requestDraw();
      if (!gesture.moved) {
        // A plain click on empty space: the first corner of a two-click box (unless it only deselected).
        if (!gesture.hadSelection) this.#pendingCorner = gesture.start;
        return;
      }
      const [x, y] = this.viewport.toImage(...this.#at(event));
      const box = boxFromCorners(gesture.start[0], gesture.start[1], x, y, frame.width, frame.height);
      if (isUsableBox(box)) this.onDraw(box);
      return;
    }
    const box = this.store.get(gesture.key);
    if (gesture.moved && box) this.onReshape(gesture.key, gesture.from, box.box.slice());
  }

  #wheel(event) {
    event.preventDefault();
    this.viewport.zoomAt(Math.exp(-event.deltaY * 0.0015), ...this.#at(event));
    this.renderer.viewMoving();
  }

  #showPreview(start, x, y) {
    const frame = this.store.frame;
    this.renderer.preview = boxFromCorners(start[0], start[1], x, y, frame.width, frame.height);
    this.renderer.requestDraw();
  }

  #hover(screenX, screenY, x, y) {
    const handle = this.#handleAt(screenX, screenY);
    const key = handle ? this.store.selectedKey : this.boxAt(x, y);
    this.element.style.cursor = this.spaceHeld ? "grab" : handle ? HANDLE_CURSORS[handle] : key ? "move" : "";
    if (key !== this.renderer.hoverKey) {
      this.renderer.hoverKey = key;
      this.renderer.requestDraw();
    }
  }

  #handleAt(screenX, screenY) {
    const box = this.store.selected;
    if (!box) return null;
    const [left, top] = this.viewport.toScreen(box.box[0], box.box[1]);
    const [right, bottom] = this.viewport.toScreen(box.box[2], box.box[3]);
    for (const [name, [x, y]] of Object.entries(handlePoints([left, top, right, bottom]))) {
      if (Math.abs(screenX - x) <= HANDLE_REACH && Math.abs(screenY - y) <= HANDLE_REACH) return name;
    }
    return null;
  }
}
