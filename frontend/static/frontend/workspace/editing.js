// What the annotator does to boxes: draw and label, accept, reject, relabel, move, select.

import { api } from "../api.js";
import { acceptProposals, createBox, deleteBox, rejectProposal, relabelBox, reshapeBox } from "./commands.js";
import { growBox, sameBox, translateBox } from "./geometry.js";
import { Source, isProposal, newLocalKey } from "./store.js";

const NUDGE_SETTLE_MS = 400; // key-repeat nudges within this gap become one save and one undo step

export class Editor {
  #nudge = null;

  constructor({ store, queue, renderer, viewport, picker, orgPath, notify, threshold }) {
    Object.assign(this, { store, queue, renderer, viewport, picker, orgPath, notify, threshold });
  }

  // --- drawing and labelling --------------------------------------------------------

  /** A box was drawn: it stays a local draft until it has a label, then it is saved confirmed. */
  async drawn(box) {
    const draft = {
      key: newLocalKey(),
      id: null,
      box,
      labelId: null,
      status: "proposed",
      source: Source.HUMAN,
      score: null,
      suggestions: [],
      author: null,
      isDraft: true,
    };
    this.store.upsert(draft);
    this.store.select(draft.key);
    await this.#labelDraft(draft.key);
  }

  async #labelDraft(key) {
    const frameId = this.store.frame.id;
    const labelId = await this.picker.open({
      title: "Label the new box",
      suggestionsLater: this.#suggest(frameId, this.store.get(key).box),
    });
    const draft = this.store.get(key);
    if (!draft || this.store.frame?.id !== frameId) return;
    if (labelId === null) {
      this.notify("The new box is saved once it has a label: press / to label it, or Delete to drop it.");
      return;
    }
    this.store.execute(createBox({ store: this.store, queue: this.queue, frameId, draft, labelId }));
  }

  /** The model's label suggestions for a drawn box; null when it cannot say (the picker opens unfilled). */
  async #suggest(frameId, box) {
    try {
      const answer = await api(`${this.orgPath}/frames/${frameId}/suggest-labels`, { method: "POST", body: { box } });
      const model = answer.model || {};
      return {
        suggestions: answer.suggestions,
        note: model.is_random
          ? "Suggestions come from a random-init model: weak until it is trained."
          : model.weights_description
            ? `Suggested by ${model.weights_description}.`
            : "",
      };
    } catch {
      return null;
    }
  }

  async openPicker() {
    const box = this.#requireSelection();
    if (!box) return;
    if (box.isDraft) return this.#labelDraft(box.key);
    const labelId = await this.picker.open({ title: "Change the label", suggestions: box.suggestions });
    if (labelId !== null && this.store.get(box.key)) this.applyLabel(box.key, labelId);
  }

  /** Give a box a label: a proposal is accepted with it, a confirmed box is relabelled. */
  applyLabel(key, labelId) {
    this.flushNudge();
    const box = this.store.get(key);
    if (!box) return;
    if (box.isDraft) {
      this.store.execute(createBox({ store: this.store, queue: this.queue, frameId: this.store.frame.id, draft: box, labelId }));
    } else if (isProposal(box)) {
      this.store.execute(acceptProposals({ store: this.store, queue: this.queue, keys: [key], labelId }));
      this.#selectNextProposal(box);
    } else if (box.labelId !== labelId) {
      this.store.execute(relabelBox({ store: this.store, queue: this.queue, key, labelId }));
    }
  }

  /** Number keys: the selected box's n-th suggestion (best first). */
  applySuggestion(rank) {
    const box = this.#requireSelection();
    if (!box) return;
    const suggestion = [...box.suggestions].sort((a, b) => b.score - a.score)[rank - 1];
    if (!suggestion) {
      this.notify(`This box has no suggestion number ${rank}; press / to find a label.`);
      return;
    }
    this.applyLabel(box.key, suggestion.label_id);
  }

  // --- proposals ----------------------------------------------------------------------

  accept() {
    const box = this.#requireSelection();
    if (!box) return;
    if (box.isDraft || box.labelId === null) return this.openPicker();
    if (!isProposal(box)) {
      this.notify("This box is already confirmed.");
      return;
    }
    this.store.execute(acceptProposals({ store: this.store, queue: this.queue, keys: [box.key] }));
    this.#selectNextProposal(box);
  }

  acceptAbove() {
    this.flushNudge();
    const threshold = Number(this.threshold.value);
    const keys = [...this.store.boxes.values()]
      .filter((box) => isProposal(box) && box.labelId !== null && (box.score ?? 0) >= threshold)
      .map((box) => box.key);
    if (!keys.length) {
      this.notify(`No proposal scores ${threshold.toFixed(2)} or more.`);
      return;
    }
    this.store.execute(acceptProposals({ store: this.store, queue: this.queue, keys }));
    this.notify(`Accepted ${keys.length} proposal${keys.length === 1 ? "" : "s"} scoring ${threshold.toFixed(2)} or more.`);
  }

  /** R / Delete: reject a proposal, delete a confirmed box, drop a draft. */
  rejectOrDelete() {
    const box = this.#requireSelection();
    if (!box) return;
    if (box.isDraft) {
      this.store.remove(box.key);
    } else if (isProposal(box)) {
      this.store.execute(rejectProposal({ store: this.store, queue: this.queue, key: box.key }));
      this.#selectNextProposal(box);
    } else {
      this.store.execute(deleteBox({ store: this.store, queue: this.queue, frameId: this.store.frame.id, key: box.key }));
    }
  }

  // --- geometry -------------------------------------------------------------------------

  /** A box was dragged or resized from ``from`` to ``to`` (it already shows ``to``). */
  reshaped(key, from, to) {
    const box = this.store.get(key);
    if (!box || sameBox(from, to)) return;
    if (box.isDraft) {
      this.store.changed();
      return;
    }
    if (isProposal(box) && box.source !== Source.HUMAN && box.labelId === null) {
      box.box = from;
      this.store.changed();
      this.notify("Give this proposal a label first (/ or 1-3): a fixed proposal becomes your confirmed box.");
      return;
    }
    this.store.execute(reshapeBox({ store: this.store, queue: this.queue, key, from, to }));
  }

  /** Arrow keys: move (or grow/shrink) the selected box; a burst of presses is one save. */
  nudge(dx, dy, { resize = false } = {}) {
    const box = this.store.selected;
    if (!box) return;
    if (this.#nudge && this.#nudge.key !== box.key) this.flushNudge();
    if (!this.#nudge) this.#nudge = { key: box.key, from: box.box.slice(), timer: 0 };
    const { width, height } = this.store.frame;
    box.box = resize ? growBox(box.box, dx, dy, width, height) : translateBox(box.box, dx, dy, width, height);
    this.store.changed();
    clearTimeout(this.#nudge.timer);
    this.#nudge.timer = setTimeout(() => this.flushNudge(), NUDGE_SETTLE_MS);
  }

  /** Save a pending nudge now (before any other edit, undo, or leaving the frame). */
  flushNudge() {
    const nudge = this.#nudge;
    if (!nudge) return;
    this.#nudge = null;
    clearTimeout(nudge.timer);
    const box = this.store.get(nudge.key);
    if (box) this.reshaped(nudge.key, nudge.from, box.box.slice());
  }

  // --- selection ----------------------------------------------------------------------

  cycle(step) {
    const boxes = this.store.ordered();
    if (!boxes.length) return;
    const index = boxes.findIndex((box) => box.key === this.store.selectedKey);
    const next = index < 0 ? (step > 0 ? 0 : boxes.length - 1) : (index + step + boxes.length) % boxes.length;
    this.#selectAndReveal(boxes[next]);
  }

  /** After deciding on a proposal, go to the next undecided one in reading order. */
  #selectNextProposal(decided) {
    const proposals = this.store.ordered().filter((box) => isProposal(box) && box.key !== decided.key);
    if (!proposals.length) {
      this.store.select(null);
      return;
    }
    const after = proposals.find(
      (box) => box.box[1] > decided.box[1] || (box.box[1] === decided.box[1] && box.box[0] > decided.box[0]),
    );
    this.#selectAndReveal(after || proposals[0]);
  }

  #selectAndReveal(box) {
    this.store.select(box.key);
    this.viewport.reveal(box.box, this.renderer.width, this.renderer.height);
    this.renderer.requestDraw();
  }

  #requireSelection() {
    this.flushNudge();
    const box = this.store.selected;
    if (!box) this.notify("Select a box first: click it, or press Tab.");
    return box;
  }
}
