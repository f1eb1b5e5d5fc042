// A uniform grid over the image so a click tests a handful of boxes, not all of them.

const CELL_SIZE = 128;

export class BoxIndex {
  #cells = new Map();

  /** ``boxes``: [{key, box: [x1, y1, x2, y2]}] in image pixels. */
  rebuild(boxes) {
    this.#cells.clear();
    for (const entry of boxes) {
      const [x1, y1, x2, y2] = entry.box;
      for (let cy = cell(y1); cy <= cell(y2); cy++) {
        for (let cx = cell(x1); cx <= cell(x2); cx++) {
          const id = cellId(cx, cy);
          const bucket = this.#cells.get(id);
          if (bucket) bucket.push(entry);
          else this.#cells.set(id, [entry]);
        }
      }
    }
  }

  /** The smallest box containing (x, y): boxes nested in bigger ones stay clickable. */
  hit(x, y) {
    let best = null;
    let bestArea = Infinity;
    for (const entry of this.#cells.get(cellId(cell(x), cell(y))) || []) {
      const [x1, y1, x2, y2] = entry.box;
      if (x < x1 || x > x2 || y < y1 || y > y2) continue;
      const area = (x2 - x1) * (y2 - y1);
      if (area < bestArea) {
        best = entry;
        bestArea = area;
      }
    }
    return best ? best.key : null;
  }
}

function cell(value) {
  return Math.floor(value / CELL_SIZE);
}

function cellId(cx, cy) {
  return cx * 1_000_003 + cy;
}
