// The mapping between image pixels and screen (CSS) pixels: screen = image * scale + offset.

const MIN_SCALE = 0.02;
const MAX_SCALE = 40;

export class Viewport {
  scale = 1;
  offsetX = 0;
  offsetY = 0;
  fitted = false; // still showing the whole image as fit() left it (no zoom or pan since)

  toImage(screenX, screenY) {
    return [(screenX - this.offsetX) / this.scale, (screenY - this.offsetY) / this.scale];
  }

  toScreen(imageX, imageY) {
    return [imageX * this.scale + this.offsetX, imageY * this.scale + this.offsetY];
  }

  /** Show the whole image, centred, with a small margin. */
  fit(imageWidth, imageHeight, viewWidth, viewHeight) {
    const margin = 16;
    this.scale = Math.max(
      MIN_SCALE,
      Math.min((viewWidth - 2 * margin) / imageWidth, (viewHeight - 2 * margin) / imageHeight),
    );
    this.offsetX = (viewWidth - imageWidth * this.scale) / 2;
    this.offsetY = (viewHeight - imageHeight * this.scale) / 2;
    this.fitted = true;
  }

  /** Zoom by ``factor`` keeping the image point under (screenX, screenY) where it is. */
  zoomAt(factor, screenX, screenY) {
    const [imageX, imageY] = this.toImage(screenX, screenY);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    this.offsetX = screenX - imageX * this.scale;
    this.offsetY = screenY - imageY * this.scale;
    this.fitted = false;
  }

  panBy(dx, dy) {
    this.offsetX += dx;
    this.offsetY += dy;
    this.fitted = false;
  }

  /** Pan the least needed to bring an image-space box into view. */
  reveal([x1, y1, x2, y2], viewWidth, viewHeight) {
    const margin = 40;
    const [startX, startY] = [this.offsetX, this.offsetY];
    const [left, top] = this.toScreen(x1, y1);
    const [right, bottom] = this.toScreen(x2, y2);
    if (left < margin) this.offsetX += margin - left;
    else if (right > viewWidth - margin) this.offsetX -= Math.min(right - (viewWidth - margin), left - margin);
    if (top < margin) this.offsetY += margin - top;
    else if (bottom > viewHeight - margin) this.offsetY -= Math.min(bottom - (viewHeight - margin), top - margin);
    if (this.offsetX !== startX || this.offsetY !== startY) this.fitted = false;
  }
}
