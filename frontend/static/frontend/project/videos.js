// The project's videos: the ingest progress (polled while any video is still on its way),
// the reason and a re-run for a failed ingest, and the shots and keyframes once ready.
// Admins also re-run an ingest with other keyframe settings, and delete a video (after a
// confirmation; the server removes its files too). Rows are updated in place, so polling
// never reloads the thumbnails.

import { api, listAll } from "../api.js";
import { h } from "./dom.js";

const POLL_MS = 2000;
const SETTLED = new Set(["ready", "failed"]);
const STAGE_TEXT = {
  uploaded: "Waiting for a worker",
  probing: "Reading the file",
  scanning: "Finding shots",
  keyframes: "Choosing keyframes",
  frames: "Writing frames",
  ready: "Ready",
  failed: "Ingest failed",
};

export class VideoList {
  #rows = new Map(); // video id -> the row's elements
  #detailsShown = new Set(); // ids of ready videos whose shots and keyframes are loaded or loading
  #timer = 0;

  /** notify(message, {error}) reports what the list cannot show in a row. */
  constructor({ element, orgPath, projectId, canEdit, notify }) {
    Object.assign(this, { element, orgPath, projectId, canEdit, notify });
    this.projectPath = `${orgPath}/projects/${projectId}`;
  }

  /** Load the list now, and again every few seconds while any video is being ingested. */
  async refresh() {
    clearTimeout(this.#timer);
    let videos;
    try {
      videos = await listAll(`${this.projectPath}/videos/?page_size=1000`);
    } catch (error) {
      this.notify(`The videos could not be loaded (${error.message}); trying again.`, { error: true });
      this.#timer = setTimeout(() => this.refresh(), POLL_MS * 3);
      return;
    }
    this.#render(videos.reverse()); // newest first
    if (videos.some((video) => !SETTLED.has(video.stage))) this.#timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  #render(videos) {
    const ids = new Set(videos.map((video) => video.id));
    for (const [id, row] of this.#rows) {
      if (!ids.has(id)) {
        row.item.remove();
        this.#rows.delete(id);
      }
    }
    if (!videos.length) {
      this.element.replaceChildren(h("li", { className: "empty" }, this.canEdit ? "No videos yet: add one above." : "No videos yet."));
      return;
    }
    this.element.querySelector(".empty")?.remove();
    for (const video of videos) {
      const row = this.#rows.get(video.id) || this.#createRow(video);
      this.element.append(row.item); // appending in turn keeps the order of the answer
      this.#update(row, video);
    }
  }

  #createRow(video) {
    const statusId = `video-${video.id}-status`;
    const row = {
      item: h("li", { className: "video", "data-video-id": video.id }),
      meta: h("span", { className: "video-meta" }),
      ingest: h("div", { className: "ingest" }),
      progress: h("progress", { max: 100, "aria-labelledby": statusId }),
      status: h("span", { id: statusId, className: "ingest-status", "aria-live": "polite" }),
      failure: h("div", { className: "failure", hidden: true }),
      error: h("p", { className: "error" }),
      details: h("div", { className: "video-details", hidden: true }),
    };
    row.ingest.append(row.progress, row.status);
    row.failure.append(row.error);
    if (this.canEdit) {
      const rerun = h("button", { type: "button", className: "secondary" }, "Re-run ingest");
      rerun.addEventListener("click", () => this.#reingest(video.id, rerun));
      row.failure.append(rerun);
    }
    const head = h("div", { className: "video-head" }, h("h3", {}, video.original_name), row.meta);
    row.settings = h("form", { className: "reingest-form", hidden: true });
    if (this.canEdit) head.append(this.#adminActions(video, row));
    row.item.append(head, row.settings, row.ingest, row.failure, row.details);
    this.#rows.set(video.id, row);
    return row;
  }

  #update(row, video) {
    row.item.dataset.stage = video.stage;
    row.meta.textContent = describeVideo(video);
    const ready = video.stage === "ready";
    const failed = video.stage === "failed";
    row.progress.value = video.progress;
    row.status.textContent = ready || failed ? STAGE_TEXT[video.stage] : `${STAGE_TEXT[video.stage] ?? video.stage} · ${video.progress}%`;
    row.progress.hidden = ready || failed;
    row.failure.hidden = !failed;
    row.error.textContent = failed ? video.error || "The ingest stopped without saying why." : "";
    if (ready && !this.#detailsShown.has(video.id)) {
      this.#detailsShown.add(video.id);
      this.#showDetails(row, video.id);
    }
    if (!ready) {
      this.#detailsShown.delete(video.id);
      row.details.hidden = true;
    }
  }

  async #showDetails(row, videoId) {
    try {
      const [shots, keyframes] = await Promise.all([
        listAll(`${this.orgPath}/videos/${videoId}/shots/?page_size=1000`),
        listAll(`${this.projectPath}/frames/?video_id=${videoId}&is_keyframe=true&page_size=1000`),
      ]);
      keyframes.sort((a, b) => a.index - b.index);
      const shotNumber = new Map(shots.map((shot) => [shot.id, shot.index + 1]));
      const strip = h("ol", { className: "keyframe-strip", "aria-label": "Keyframes" });
      for (const frame of keyframes) {
        const where = `Shot ${shotNumber.get(frame.shot_id) ?? "?"}, frame ${frame.index} (${frame.timestamp_s.toFixed(2)} s)`;
        const image = h("img", { src: frame.thumbnail_url, alt: where, title: where, loading: "lazy" });
        strip.append(h("li", { className: isFirstOfShot(frame, keyframes) ? "shot-start" : "" }, image));
      }
      const summary = `${plural(shots.length, "shot")} · ${plural(keyframes.length, "keyframe")}`;
      row.details.replaceChildren(h("p", { className: "video-summary" }, summary), strip);
      row.details.hidden = false;
    } catch (error) {
      this.#detailsShown.delete(videoId); // the next poll or refresh tries again
      row.details.replaceChildren(h("p", { className: "error" }, `Shots and keyframes could not be loaded: ${error.message}`));
      row.details.hidden = false;
    }
  }

  #adminActions(video, row) {
    const settings = h("button", { type: "button", className: "secondary small", "aria-expanded": "false" }, "Keyframe settings…");
    settings.addEventListener("click", () => this.#toggleSettings(video, row, settings));
    const remove = h("button", { type: "button", className: "danger small", "aria-label": `Delete ${video.original_name}` }, "Delete");
    remove.addEventListener("click", () => this.#delete(video, remove));
    return h("span", { className: "video-actions" }, settings, remove);
  }

  /** The project's keyframe settings, which the re-run uses (they apply to later uploads too). */
  async #toggleSettings(video, row, toggle) {
    if (!row.settings.hidden) {
      row.settings.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      return;
    }
    let project;
    try {
      project = await api(this.projectPath);
    } catch (error) {
      this.notify(`The project's settings could not be loaded: ${error.message}`, { error: true });
      return;
    }
    const number = (name, label, min) =>
      h("label", {}, `${label} `, h("input", { type: "number", name, min, value: project[name], required: true, "aria-label": `${label} (${video.original_name})` }));
    const run = h("button", { type: "submit" }, "Ingest again with these settings");
    row.settings.replaceChildren(
      number("keyframes_min_per_shot", "Keyframes per shot, at least", 1),
      number("keyframes_max_per_shot", "at most", 1),
      number("every_nth_frame", "Every Nth frame instead (0: off)", 0),
      run,
      h("p", { className: "hint" }, "These are the project's settings: later uploads use them too. The video's frames are made again."),
    );
    row.settings.onsubmit = async (event) => {
      event.preventDefault();
      run.disabled = true;
      const wanted = Object.fromEntries([...new FormData(row.settings)].map(([name, value]) => [name, Number(value)]));
      const changed = Object.fromEntries(Object.entries(wanted).filter(([name, value]) => project[name] !== value));
      try {
        if (Object.keys(changed).length) await api(this.projectPath, { method: "PATCH", body: { version: project.version, ...changed } });
        row.settings.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
        await this.#reingest(video.id, run);
      } catch (error) {
        this.notify(`The ingest could not be started again: ${error.message}`, { error: true });
      } finally {
        run.disabled = false;
      }
    };
    row.settings.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
  }

  async #delete(video, button) {
    const question = `Delete ${video.original_name}? Its frames, shots and every box on them are deleted, and its files removed. This cannot be undone.`;
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      await api(`${this.orgPath}/videos/${video.id}`, { method: "DELETE" });
      await this.refresh();
      this.notify(`Deleted ${video.original_name}.`);
    } catch (error) {
      button.disabled = false;
      this.notify(`${video.original_name} could not be deleted: ${error.message}`, { error: true });
    }
  }

  async #reingest(videoId, button) {
    button.disabled = true;
    try {
      const video = await api(`${this.orgPath}/videos/${videoId}/reingest`, { method: "POST" });
      this.#update(this.#rows.get(videoId), video);
      await this.refresh();
    } catch (error) {
      this.notify(`The ingest could not be started again: ${error.message}`, { error: true });
    } finally {
      button.disabled = false;
    }
  }
}

function describeVideo(video) {
  const parts = [];
  if (video.duration_s) parts.push(`${video.duration_s.toFixed(1)} s`);
  if (video.frame_count) parts.push(plural(video.frame_count, "frame"));
  if (video.width && video.height) parts.push(`${video.width}×${video.height}`);
  return parts.join(" · ");
}

function isFirstOfShot(frame, keyframes) {
  const index = keyframes.indexOf(frame);
  return index > 0 && keyframes[index - 1].shot_id !== frame.shot_id;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
