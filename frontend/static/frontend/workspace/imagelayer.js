// The frame's picture as a canvas the compositor moves: zoom and pan change only a CSS
// transform, so a 4K frame is never redrawn while panning.
//
// The canvas holds the image at a power-of-two level of detail close to the zoom
// (a 4K frame fitted into a laptop window is held at 1/4 size), built once per level
// with createImageBitmap off the main thread; until a level is ready the nearest one
// already built is shown, stretched.

export class ImageLayer {
  #source = null;
  #levels = new Map(); // level -> ImageBitmap (or a promise while it is built)
  #shownLevel = null;
  #transform = "";

  constructor(canvas, onLevelReady) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d", { alpha: false });
    this.onLevelReady = onLevelReady;
  }

  setImage(bitmap) {
    // Level 1 is the frame cache's bitmap; the smaller levels are ours to free.
    for (const [level, built] of this.#levels) if (level !== 1 && built instanceof ImageBitmap) built.close();
    this.#levels = new Map(bitmap ? [[1, bitmap]] : []);
    this.#source = bitmap;
    this.#shownLevel = null;
    this.canvas.hidden = !bitmap;
  }

  /** Place the picture for ``viewport``; cheap unless the level of detail changes. */
  update(viewport) {
    if (!this.#source) return;
    const ratio = window.devicePixelRatio || 1;
    const wanted = levelFor(viewport.scale * ratio);
    const level = this.#bestReady(wanted);
    if (level !== this.#shownLevel) this.#show(level, ratio);
    if (level !== wanted) this.#build(wanted);
    const stretch = (viewport.scale * ratio) / level;
    const transform = `matrix(${stretch}, 0, 0, ${stretch}, ${viewport.offsetX}, ${viewport.offsetY})`;
    if (transform !== this.#transform) {
      this.canvas.style.transform = transform;
      this.#transform = transform;
    }
    // Zoomed far in, annotators want the real pixels they are placing edges on.
    this.canvas.style.imageRendering = viewport.scale >= 2 ? "pixelated" : "auto";
  }

  #show(level, ratio) {
    const bitmap = this.#levels.get(level);
    this.canvas.width = bitmap.width;
    this.canvas.height = bitmap.height;
    this.canvas.style.width = `${bitmap.width / ratio}px`;
    this.canvas.style.height = `${bitmap.height / ratio}px`;
    this.context.drawImage(bitmap, 0, 0);
    this.#shownLevel = level;
  }

  #bestReady(wanted) {
    let best = 1;
    for (const [level, bitmap] of this.#levels) {
      if (!(bitmap instanceof ImageBitmap)) continue;
      if (level === wanted) return level;
      // Prefer the smallest ready level that still has at least the wanted detail.
      if (level >= wanted && level < best) best = level;
    }
    return best;
  }

  #build(level) {
    if (this.#levels.has(level)) return;
    const source = this.#source;
    const building = createImageBitmap(source, {
      resizeWidth: Math.max(1, Math.round(source.width * level)),
      resizeHeight: Math.max(1, Math.round(source.height * level)),
      resizeQuality: "high",
    });
    this.#levels.set(level, building);
    building.then((bitmap) => {
      if (this.#source !== source) {
        bitmap.close();
        return;
      }
      this.#levels.set(level, bitmap);
      this.onLevelReady();
    });
  }
}

/** The power of two at or above ``scale``, at most 1 (never more detail than the image has). */
function levelFor(scale) {
  if (scale >= 1) return 1;
  return Math.max(1 / 64, 2 ** Math.ceil(Math.log2(scale)));
}
