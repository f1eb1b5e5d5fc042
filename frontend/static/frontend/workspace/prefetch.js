// Frames ready before they are asked for: the detail JSON and the decoded image of the
// next frames in the queue (and of the shot neighbours), so moving on never waits.

import { api } from "../api.js";

const UPCOMING = 3;
// Decoded 4K frames are ~33 MB each; keep a handful, never the whole shot.
const CAPACITY = 8;

export class FrameCache {
  upcoming = [];
  #entries = new Map(); // frame id -> {promise, image?, usedAt}
  #pinned = new Set();

  constructor({ orgPath, projectId }) {
    this.orgPath = orgPath;
    this.projectId = projectId;
  }

  /** {detail, image} for a frame, from the cache or the server. */
  load(frameId, imageUrl = null) {
    let entry = this.#entries.get(frameId);
    if (!entry) {
      entry = { usedAt: 0 };
      entry.promise = this.#fetch(frameId, imageUrl, entry).catch((error) => {
        this.#entries.delete(frameId);
        throw error;
      });
      this.#entries.set(frameId, entry);
    }
    entry.usedAt = performance.now();
    return entry.promise;
  }

  /** A loaded frame's entry without waiting, or null while it is still on its way. */
  ready(frameId) {
    const entry = this.#entries.get(frameId);
    return entry && entry.loaded ? entry.loaded : null;
  }

  /** Fetch the frame's detail again (its boxes may have changed), keeping the decoded image. */
  async refreshDetail(frameId) {
    const detail = await api(`${this.orgPath}/frames/${frameId}`);
    const entry = this.#entries.get(frameId);
    if (entry && entry.loaded && entry.loaded.detail.image_url === detail.image_url) entry.loaded = { ...entry.loaded, detail };
    return detail;
  }

  forget(frameId) {
    const entry = this.#entries.get(frameId);
    this.#entries.delete(frameId);
    entry?.loaded?.image.close?.();
  }

  /** Keep these frames whatever happens (the one on screen and its neighbours). */
  pin(frameIds) {
    this.#pinned = new Set(frameIds.filter(Boolean));
    for (const id of this.#pinned) if (this.#entries.has(id)) this.#entries.get(id).usedAt = performance.now();
    this.#evict();
  }

  /** Ask the queue what comes next (nothing is assigned) and start loading it. */
  async refreshUpcoming(excludedIds) {
    const frames = await api(`${this.orgPath}/projects/${this.projectId}/queue/peek?limit=${UPCOMING + excludedIds.length}`);
    this.upcoming = frames.filter((frame) => !excludedIds.includes(frame.id)).slice(0, UPCOMING);
    for (const frame of this.upcoming) this.load(frame.id, frame.image_url).catch(() => {});
    this.#evict();
  }

  async #fetch(frameId, imageUrl, entry) {
    const detailRequest = api(`${this.orgPath}/frames/${frameId}`);
    const imageRequest = imageUrl ? loadImage(imageUrl) : detailRequest.then((detail) => loadImage(detail.image_url));
    const [detail, image] = await Promise.all([detailRequest, imageRequest]);
    entry.loaded = { detail, image };
    return entry.loaded;
  }

  #evict() {
    const keep = new Set([...this.#pinned, ...this.upcoming.map((frame) => frame.id)]);
    const others = [...this.#entries].filter(([id]) => !keep.has(id)).sort((a, b) => b[1].usedAt - a[1].usedAt);
    for (const [id] of others.slice(Math.max(0, CAPACITY - keep.size))) this.forget(id);
  }
}

async function loadImage(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`The frame image could not be loaded (HTTP ${response.status}).`);
  // Decoded off the main thread, once; zoom and pan only transform it.
  return createImageBitmap(await response.blob());
}
