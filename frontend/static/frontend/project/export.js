// Exports (admins): pick a format and what to take, start it, watch its progress, download.
// The export runs in a bulk worker; this page only asks for it and polls its status row.

import { api, listAll } from "../api.js";
import { h } from "./dom.js";

const POLL_MS = 1000;
const FORMAT_NAMES = { coco: "COCO JSON", yolo: "YOLO txt", voc: "Pascal VOC" };

export class ExportPanel {
  constructor({ form, list, orgPath, projectId }) {
    Object.assign(this, { form, list, orgPath, projectId });
    this.result = form.querySelector(".form-result");
    this.polling = new Map(); // export id -> timer
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    const split = form.querySelector("#export-split");
    const share = form.querySelector("#export-val-share");
    split.addEventListener("change", () => (share.disabled = !split.checked));
    const shots = form.querySelector("#export-shots-picker");
    shots.addEventListener("toggle", () => shots.open && this.loadShots());
  }

  async load() {
    const [videos, labels, exports] = await Promise.all([
      listAll(`${this.orgPath}/projects/${this.projectId}/videos/`),
      listAll(`${this.orgPath}/projects/${this.projectId}/labels/`),
      api(`${this.orgPath}/projects/${this.projectId}/exports/`),
    ]);
    this.videos = videos;
    fillSelect(this.form.querySelector("#export-videos"), videos.map((video) => [video.id, video.original_name]));
    fillSelect(this.form.querySelector("#export-labels"), labels.map((label) => [label.id, label.name]));
    this.list.replaceChildren();
    for (const item of exports.results) this.show(item);
    this.showEmpty();
  }

  async loadShots() {
    const select = this.form.querySelector("#export-shots");
    if (select.dataset.loaded) return;
    select.dataset.loaded = "true";
    for (const video of this.videos || []) {
      const shots = await listAll(`${this.orgPath}/videos/${video.id}/shots/`);
      const group = h("optgroup", { label: video.original_name });
      for (const shot of shots) group.append(h("option", { value: shot.id }, `Shot ${shot.index + 1} (frames ${shot.start_frame}–${shot.end_frame - 1})`));
      select.append(group);
    }
  }

  request() {
    const form = this.form;
    const chosen = (selector) => [...form.querySelector(selector).selectedOptions].map((option) => Number(option.value));
    return {
      format: form.querySelector("#export-format").value,
      video_ids: chosen("#export-videos"),
      shot_ids: chosen("#export-shots"),
      label_ids: chosen("#export-labels"),
      complete_frames_only: form.querySelector("#export-complete").checked,
      confirmed_only: form.querySelector("#export-confirmed").checked,
      include_images: form.querySelector("#export-images").checked,
      val_share: form.querySelector("#export-split").checked ? Number(form.querySelector("#export-val-share").value) / 100 : null,
    };
  }

  async start() {
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    this.result.replaceChildren(h("p", {}, "Starting the export…"));
    try {
      const item = await api(`${this.orgPath}/projects/${this.projectId}/exports/`, { method: "POST", body: this.request() });
      this.result.replaceChildren(h("p", {}, "Export started: it is written in the background; you can leave this page."));
      this.show(item, { first: true });
      this.showEmpty();
    } catch (error) {
      this.result.replaceChildren(h("p", { className: "error" }, error.message));
    } finally {
      button.disabled = false;
    }
  }

  /** Add or update the row of one export; keep polling while it is queued or running. */
  show(item, { first = false } = {}) {
    const row = render(item);
    row.append(h("button", { type: "button", className: "danger", "aria-label": `Delete export ${item.id}`, onclick: () => this.remove(item.id, row) }, "Delete"));
    const existing = this.list.querySelector(`[data-export-id="${item.id}"]`);
    if (existing) existing.replaceWith(row);
    else if (first) this.list.prepend(row);
    else this.list.append(row);
    if ((item.state === "queued" || item.state === "running") && !this.polling.has(item.id)) this.poll(item.id);
  }

  /** Delete an export (its file too); a worker still writing it stops at its next heartbeat. */
  async remove(id, row) {
    try {
      await api(`${this.orgPath}/exports/${id}`, { method: "DELETE" });
      clearTimeout(this.polling.get(id));
      this.polling.delete(id);
      row.remove();
      this.showEmpty();
    } catch (error) {
      this.result.replaceChildren(h("p", { className: "error" }, error.message));
    }
  }

  poll(id) {
    const tick = async () => {
      try {
        const item = await api(`${this.orgPath}/exports/${id}`);
        if (!this.polling.has(id)) return; // deleted meanwhile
        this.polling.delete(id);
        this.show(item);
      } catch (error) {
        this.polling.set(id, setTimeout(tick, POLL_MS * 5)); // a dropped connection: try again later
      }
    };
    this.polling.set(id, setTimeout(tick, POLL_MS));
  }

  showEmpty() {
    const empty = this.list.querySelector(".empty");
    if (this.list.querySelector("[data-export-id]")) empty?.remove();
    else if (!empty) this.list.append(h("li", { className: "empty" }, "No exports yet."));
  }
}

function fillSelect(select, options) {
  select.replaceChildren(...options.map(([value, text]) => h("option", { value }, text)));
  select.size = Math.min(Math.max(options.length, 2), 6);
}

function describe(item) {
  const parts = [FORMAT_NAMES[item.format] || item.format];
  if (item.video_ids.length || item.shot_ids.length) parts.push(`${item.video_ids.length} videos, ${item.shot_ids.length} shots`);
  if (item.label_ids.length) parts.push(`${item.label_ids.length} labels`);
  if (item.complete_frames_only) parts.push("complete frames");
  if (!item.confirmed_only) parts.push("with proposals");
  if (item.val_share !== null) parts.push(`${Math.round(item.val_share * 100)}% validation`);
  if (item.include_images) parts.push("with images");
  return parts.join(" · ");
}

function render(item) {
  const row = h("li", { className: "export", "data-export-id": item.id, "data-state": item.state });
  row.append(h("span", { className: "export-what" }, `#${item.id} ${describe(item)}`));
  if (item.state === "queued" || item.state === "running") {
    const label = item.state === "queued" ? "Waiting for a worker" : `Writing · ${item.progress}%`;
    row.append(h("progress", { max: 100, value: item.progress, "aria-label": `Export ${item.id} progress` }), h("span", { className: "export-state" }, label));
  } else if (item.state === "done") {
    const size = item.size_bytes >= 2 ** 20 ? `${(item.size_bytes / 2 ** 20).toFixed(1)} MB` : `${Math.ceil(item.size_bytes / 1024)} KB`;
    row.append(
      h("span", { className: "export-state" }, `${item.image_count} images · ${item.annotation_count} boxes · ${size}`),
      h("a", { className: "button", href: item.download_url, download: "" }, "Download"),
    );
  } else {
    row.append(h("span", { className: "export-state error" }, item.error || "Failed"));
  }
  return row;
}
