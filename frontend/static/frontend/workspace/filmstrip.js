// The shot's frames in order, as thumbnails with their status and a keyframe marker.

import { listAll } from "../api.js";

const STATUS_TEXT = { new: "new", in_progress: "in progress", complete: "complete" };

export class Filmstrip {
  frames = [];
  #shotId = null;
  #loading = null;

  /** ``onOpen(frame)`` when a thumbnail is clicked. */
  constructor({ element, orgPath, projectId, onOpen }) {
    Object.assign(this, { element, orgPath, projectId, onOpen });
    this.list = element.querySelector("ol");
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-frame-id]");
      if (button) this.onOpen(this.frames.find((frame) => frame.id === Number(button.dataset.frameId)));
    });
  }

  /** Show the shot of ``frame`` (loading its frame list once) with ``frame`` marked current. */
  async show(frame) {
    if (!frame.shot_id) {
      this.#shotId = null;
      this.frames = [];
      this.list.replaceChildren(placeholder(frame.id ? "A still image: no shot to step through." : ""));
      return;
    }
    if (frame.shot_id !== this.#shotId) {
      this.#shotId = frame.shot_id;
      this.#loading = this.#loadShot(frame.shot_id);
    }
    const shotId = frame.shot_id;
    const frames = await this.#loading;
    if (shotId !== this.#shotId) return;
    this.frames = frames;
    this.#render(frame.id);
  }

  /** The frame ``step`` places after (or before, if negative) ``frameId`` in the shot. */
  neighbour(frameId, step) {
    const index = this.frames.findIndex((frame) => frame.id === frameId);
    return index < 0 ? null : this.frames[index + step] || null;
  }

  setStatus(frameId, status) {
    const frame = this.frames.find((candidate) => candidate.id === frameId);
    if (!frame) return;
    frame.status = status;
    const item = this.list.querySelector(`button[data-frame-id="${frameId}"]`);
    if (item) describe(item, frame);
  }

  async #loadShot(shotId) {
    const frames = await listAll(`${this.orgPath}/projects/${this.projectId}/frames/?shot_id=${shotId}&page_size=1000`);
    return frames.sort((a, b) => a.index - b.index);
  }

  #render(currentId) {
    this.list.replaceChildren(
      ...this.frames.map((frame) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.frameId = frame.id;
        button.tabIndex = -1; // reachable by click; the keyboard steps through the shot with ← →
        const image = document.createElement("img");
        image.loading = "lazy";
        image.src = frame.thumbnail_url;
        image.alt = "";
        const caption = document.createElement("span");
        caption.className = "caption";
        button.append(image, caption);
        describe(button, frame);
        if (frame.id === currentId) button.setAttribute("aria-current", "true");
        item.append(button);
        return item;
      }),
    );
    this.list.querySelector("[aria-current]")?.scrollIntoView({ block: "nearest", inline: "center" });
  }
}

function placeholder(text) {
  const item = document.createElement("li");
  item.className = "placeholder";
  item.textContent = text;
  return item;
}

function describe(button, frame) {
  button.className = `thumb status-${frame.status}${frame.is_keyframe ? " keyframe" : ""}`;
  const label = `Frame ${frame.index}, ${STATUS_TEXT[frame.status] || frame.status}${frame.is_keyframe ? ", keyframe" : ""}`;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.querySelector(".caption").textContent = `${frame.is_keyframe ? "◆ " : ""}${frame.index}`;
}
