// A resumable video upload: the file goes to the server in ordered chunks, each with its
// Content-Range. After a dropped connection the uploader asks the server how much it has
// and carries on from there; an answer that carries an ``offset`` (a 409 for a chunk the
// server already has, a short chunk, an early finish) says where to resume. So a chunk is
// never written twice and never skipped, whatever the network did. No DOM here.

import { api, ApiError } from "../api.js";

export const CHUNK_BYTES = 8 * 1024 * 1024;
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000];

/** The network gave up for longer than the retries wait; run() again resumes where it stopped. */
export class UploadInterrupted extends Error {
  constructor(offset, total, cause) {
    super(`The connection dropped after ${formatBytes(offset)} of ${formatBytes(total)}; try again to resume.`);
    this.cause = cause;
  }
}

export class ResumableUpload {
  id = null;
  offset = 0; // bytes the server holds, as it last said

  /** onProgress(offset, total) is called whenever the server reports a new offset. */
  constructor(file, { orgPath, projectId, onProgress = () => {}, chunkBytes = CHUNK_BYTES, retryDelaysMs = RETRY_DELAYS_MS }) {
    Object.assign(this, { file, orgPath, projectId, onProgress, chunkBytes, retryDelaysMs });
  }

  get total() {
    return this.file.size;
  }

  /**
   * Send what the server lacks, then finish: resolves with the video (201). A refusal of
   * the content (not a video, corrupt, too long…) rejects with the server's ApiError.
   */
  async run() {
    // Run again after an interruption, the server may hold more than it last confirmed.
    let offsetUnknown = this.id !== null;
    let failures = 0;
    for (;;) {
      try {
        if (this.id === null) await this.#start();
        else if (offsetUnknown) this.#reached((await api(this.#path)).offset);
        offsetUnknown = false;
        if (this.offset < this.total) await this.#sendChunk();
        else return await api(`${this.#path}/finish`, { method: "POST" }); // finishing twice is harmless
        failures = 0;
      } catch (error) {
        if (error instanceof ApiError && Number.isInteger(error.body?.offset)) {
          this.#reached(error.body.offset);
          continue;
        }
        if (!isTransient(error)) throw error;
        if (failures === this.retryDelaysMs.length) throw new UploadInterrupted(this.offset, this.total, error);
        await new Promise((resolve) => setTimeout(resolve, this.retryDelaysMs[failures]));
        failures += 1;
        // The lost request may or may not have reached the server: ask before sending more.
        offsetUnknown = true;
      }
    }
  }

  async #start() {
    const upload = await api(`${this.orgPath}/projects/${this.projectId}/uploads/`, {
      method: "POST",
      body: { filename: this.file.name, size: this.total },
    });
    this.id = upload.id;
    this.#reached(upload.offset);
  }

  get #path() {
    return `${this.orgPath}/uploads/${this.id}`;
  }

  async #sendChunk() {
    const end = Math.min(this.offset + this.chunkBytes, this.total);
    const upload = await api(this.#path, {
      method: "PUT",
      body: this.file.slice(this.offset, end, "application/octet-stream"),
      headers: { "Content-Range": `bytes ${this.offset}-${end - 1}/${this.total}` },
    });
    this.#reached(upload.offset);
  }

  #reached(offset) {
    this.offset = offset;
    this.onProgress(offset, this.total);
  }
}

function isTransient(error) {
  if (!(error instanceof ApiError)) return true; // fetch failed: offline, or the connection dropped
  return error.status >= 500 || error.status === 408 || error.status === 429;
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
