// Timings the page measures about itself, readable as window.__labellerMetrics (bench/ui.py reads them).

const KEEP = 5000;

export class Metrics {
  drawMs = [];
  nextFrameMs = [];
  afterDraw = [];

  constructor() {
    window.__labellerMetrics = this;
  }

  frameDrawn(milliseconds) {
    keep(this.drawMs, milliseconds);
    const callbacks = this.afterDraw;
    this.afterDraw = [];
    for (const callback of callbacks) callback();
  }

  /** From pressing "next" to the new frame drawn with its boxes; ``startMark`` was set on the key press. */
  frameShown(startMark) {
    const measure = performance.measure("labeller:next-frame", startMark);
    keep(this.nextFrameMs, measure.duration);
  }
}

function keep(list, value) {
  list.push(value);
  if (list.length > KEEP) list.shift();
}
