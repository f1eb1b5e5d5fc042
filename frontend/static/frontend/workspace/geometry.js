// Box geometry in image pixels: [x1, y1, x2, y2] with x2 > x1 and y2 > y1, as the API wants it.

export const MIN_BOX_SIZE = 2;

export const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

export function clamp(value, low, high) {
  return Math.min(Math.max(value, low), high);
}

/** The box spanned by two corners, ordered and clamped to the frame. */
export function boxFromCorners(ax, ay, bx, by, width, height) {
  return [
    clamp(Math.min(ax, bx), 0, width),
    clamp(Math.min(ay, by), 0, height),
    clamp(Math.max(ax, bx), 0, width),
    clamp(Math.max(ay, by), 0, height),
  ].map(roundPixel);
}

export function isUsableBox([x1, y1, x2, y2]) {
  return x2 - x1 >= MIN_BOX_SIZE && y2 - y1 >= MIN_BOX_SIZE;
}

/** Shift a box by (dx, dy), keeping its size and keeping it inside the frame. */
export function translateBox([x1, y1, x2, y2], dx, dy, width, height) {
  const moveX = clamp(dx, -x1, width - x2);
  const moveY = clamp(dy, -y1, height - y2);
  return [x1 + moveX, y1 + moveY, x2 + moveX, y2 + moveY].map(roundPixel);
}

/** Grow (positive) or shrink (negative) the right/bottom edges, never below the minimum size. */
export function growBox([x1, y1, x2, y2], dx, dy, width, height) {
  return [
    x1,
    y1,
    clamp(x2 + dx, x1 + MIN_BOX_SIZE, width),
    clamp(y2 + dy, y1 + MIN_BOX_SIZE, height),
  ].map(roundPixel);
}

/** Drag one handle to (x, y); the opposite edges stay put. */
export function dragHandle(box, handle, x, y, width, height) {
  let [x1, y1, x2, y2] = box;
  if (handle.includes("w")) x1 = clamp(x, 0, x2 - MIN_BOX_SIZE);
  if (handle.includes("e")) x2 = clamp(x, x1 + MIN_BOX_SIZE, width);
  if (handle.includes("n")) y1 = clamp(y, 0, y2 - MIN_BOX_SIZE);
  if (handle.includes("s")) y2 = clamp(y, y1 + MIN_BOX_SIZE, height);
  return [x1, y1, x2, y2].map(roundPixel);
}

/** Where each handle sits, for a box already in screen coordinates. */
export function handlePoints([x1, y1, x2, y2]) {
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  return { nw: [x1, y1], n: [mx, y1], ne: [x2, y1], e: [x2, my], se: [x2, y2], s: [mx, y2], sw: [x1, y2], w: [x1, my] };
}

export function sameBox(a, b) {
  return a.every((value, index) => Math.abs(value - b[index]) < 1e-6);
}

// Edges sit on whole image pixels: a pointer at fit-to-window zoom cannot place them finer.
function roundPixel(value) {
  return Math.round(value);
}
