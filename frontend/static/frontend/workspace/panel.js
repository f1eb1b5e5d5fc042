// "How am I doing" and "has the model changed": the annotator's stats for today, polled.

import { api, ApiError } from "../api.js";

const POLL_MS = 30_000;
const AFTER_SAVE_MS = 3_000; // soon after a burst of saves, not after each one

export class StatsPanel {
  #timer = 0;

  constructor({ element, orgPath, projectId }) {
    this.element = element;
    this.path = `${orgPath}/projects/${projectId}/stats/me`;
    // The latest promotion this browser has told the person about, per project.
    this.seenKey = `labeller:learned-seen:${orgPath}:${projectId}`;
    this.fields = Object.fromEntries(
      [...element.querySelectorAll("[data-stat]")].map((node) => [node.dataset.stat, node]),
    );
    this.modelLine = element.querySelector(".model-line");
    this.modelNotice = element.querySelector(".model-notice");
    document.addEventListener("visibilitychange", () => !document.hidden && this.refresh());
  }

  start() {
    this.refresh();
  }

  refreshSoon() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.refresh(), AFTER_SAVE_MS);
  }

  /** Fetch now (after completing a frame, say) and again every 30 s while the tab is visible. */
  async refresh() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.refresh(), POLL_MS);
    if (document.hidden) return;
    try {
      this.#show(await api(this.path));
    } catch (error) {
      this.modelLine.textContent =
        error instanceof ApiError && error.status === 404 ? "Stats are not available on this server yet." : "Stats could not be loaded.";
    }
  }

  #show(stats) {
    this.fields.boxes_today.textContent = stats.boxes_today;
    this.fields.frames_today.textContent = stats.frames_today;
    this.fields.acceptance.textContent =
      stats.acceptance_rate === null || stats.acceptance_rate === undefined
        ? "—"
        : `${Math.round(stats.acceptance_rate * 100)}% (${stats.proposals_accepted} of ${stats.proposals_accepted + stats.proposals_rejected})`;
    const model = stats.model;
    if (!model) {
      this.modelLine.textContent = "No model yet.";
      return;
    }
    this.modelLine.textContent = model.is_random
      ? "The model is random-init: suggestions are weak until it is trained."
      : `Model: ${model.weights_description}`;
    this.modelLine.classList.toggle("warning", Boolean(model.is_random));
    this.#announce(stats.learned);
  }

  /** "The model learned …": only when a retrained model was really promoted, once per promotion. */
  #announce(learned) {
    if (!learned) return;
    const seen = localStorage.getItem(this.seenKey);
    if (seen === learned.at) return;
    localStorage.setItem(this.seenKey, learned.at);
    this.modelNotice.hidden = false;
    this.modelNotice.textContent = `${learned.notice}. Proposals on the frames still to label come from version ${learned.version}.`;
  }
}
