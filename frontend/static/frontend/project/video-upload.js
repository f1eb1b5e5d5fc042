// Choosing video files starts their resumable uploads, one after another (in parallel they
// would only share the same connection). Each file gets a row with its progress in bytes
// and, if the server refuses the file, the server's reason.

import { h } from "./dom.js";
import { ResumableUpload, UploadInterrupted, formatBytes } from "./upload.js";

export class VideoUploader {
  #queue = Promise.resolve();
  #active = 0;

  /** onUploaded(video) runs when the server has accepted a file and started its ingest. */
  constructor({ input, list, orgPath, projectId, onUploaded }) {
    Object.assign(this, { list, orgPath, projectId, onUploaded });
    input.addEventListener("change", () => {
      for (const file of input.files) this.add(file);
      input.value = ""; // choosing the same file again is a new upload
    });
    window.addEventListener("beforeunload", (event) => {
      if (this.#active) event.preventDefault(); // leaving would stop the upload
    });
  }

  add(file) {
    const row = new UploadRow(file, this.list);
    if (!file.size) {
      row.failed("The file is empty.");
      return;
    }
    const upload = new ResumableUpload(file, {
      orgPath: this.orgPath,
      projectId: this.projectId,
      onProgress: (offset, total) => row.progressed(offset, total),
    });
    this.#enqueue(upload, row);
  }

  #enqueue(upload, row) {
    this.#active += 1;
    row.waiting();
    this.#queue = this.#queue.then(() => this.#send(upload, row));
  }

  async #send(upload, row) {
    row.sending(upload);
    try {
      const video = await upload.run();
      row.item.remove();
      this.onUploaded(video);
    } catch (error) {
      row.failed(error.message, error instanceof UploadInterrupted ? () => this.#enqueue(upload, row) : null);
    } finally {
      this.#active -= 1;
    }
  }
}

class UploadRow {
  constructor(file, list) {
    this.progress = h("progress", { max: file.size || 1, value: 0, "aria-label": `Upload of ${file.name}` });
    this.status = h("span", { className: "upload-status", "aria-live": "polite" });
    this.actions = h("span", { className: "upload-actions" });
    this.item = h("li", { className: "upload" }, h("span", { className: "upload-name" }, file.name), this.progress, this.actions, this.status);
    list.append(this.item);
  }

  waiting() {
    this.item.dataset.state = "waiting";
    this.status.textContent = "Waiting…";
    this.status.classList.remove("error");
    this.actions.replaceChildren();
  }

  sending(upload) {
    this.item.dataset.state = "sending";
    this.progressed(upload.offset, upload.total);
  }

  progressed(offset, total) {
    this.progress.value = offset;
    this.status.textContent = offset < total ? `${formatBytes(offset)} of ${formatBytes(total)}` : "Checking the video…";
  }

  /** retry: resumes the same upload; absent when the server refused the file for good. */
  failed(message, retry = null) {
    this.item.dataset.state = "failed";
    this.status.textContent = message;
    this.status.classList.add("error");
    const dismiss = h("button", { type: "button", className: "secondary" }, "Dismiss");
    dismiss.addEventListener("click", () => this.item.remove());
    this.actions.replaceChildren(dismiss);
    if (retry) {
      const again = h("button", { type: "button" }, "Try again");
      again.addEventListener("click", retry);
      this.actions.prepend(again);
    }
  }
}
