// The frame being labelled, its boxes, the selection, and undo/redo over commands.
//
// A command is {description, do(), undo()}; undo is null for actions the server cannot
// reverse (accepting or rejecting a proposal: there is no way back to "proposed").
// Undoing one of those says so and steps past it, so earlier edits stay undoable.
// History is per frame: opening another frame starts a fresh one.

export const Status = Object.freeze({ PROPOSED: "proposed", CONFIRMED: "confirmed", REJECTED: "rejected" });
export const Source = Object.freeze({ HUMAN: "human", MODEL: "model", PROPAGATION: "propagation", IMPORT: "import" });

let localKeyCounter = 0;

/** A key for a box that has no server id yet; unique across page loads (pending saves outlive them). */
export function newLocalKey() {
  localKeyCounter += 1;
  return `c-${Date.now().toString(36)}-${localKeyCounter}`;
}

export function serverKey(id) {
  return `s${id}`;
}

export function boxFromAnnotation(annotation) {
  return {
    key: serverKey(annotation.id),
    id: annotation.id,
    box: annotation.box.slice(),
    labelId: annotation.label_id,
    status: annotation.status,
    source: annotation.source,
    score: annotation.score,
    suggestions: annotation.suggestions || [],
    author: annotation.author,
    isDraft: false,
  };
}

/** An undecided box: a proposal from the model (or one saved without a label). Drafts are not proposals. */
export function isProposal(box) {
  return box.status === Status.PROPOSED && !box.isDraft;
}

export class WorkspaceStore extends EventTarget {
  frame = null;
  boxes = new Map();
  selectedKey = null;
  revision = 0;
  #undoStack = [];
  #redoStack = [];
  #ordered = null;

  loadFrame(frame, annotations) {
    this.frame = frame;
    this.boxes = new Map();
    for (const annotation of annotations) {
      if (annotation.status !== Status.REJECTED) this.boxes.set(serverKey(annotation.id), boxFromAnnotation(annotation));
    }
    this.selectedKey = null;
    this.#undoStack = [];
    this.#redoStack = [];
    this.changed();
  }

  /**
   * Bring the boxes in line with the server's list (someone else's edits, boxes the
   * propagation worker added), keeping unlabelled drafts. Call only when no save is
   * pending: until then the local state is the newer one.
   */
  mergeServer(annotations) {
    const keyById = new Map([...this.boxes.values()].filter((box) => box.id !== null).map((box) => [box.id, box.key]));
    const seen = new Set();
    for (const annotation of annotations) {
      if (annotation.status === Status.REJECTED) continue;
      seen.add(annotation.id);
      const fresh = boxFromAnnotation(annotation);
      const key = keyById.get(annotation.id) || fresh.key;
      this.boxes.set(key, { ...fresh, key });
    }
    for (const [key, box] of this.boxes) {
      if (!box.isDraft && !seen.has(box.id)) this.boxes.delete(key);
    }
    this.changed();
  }

  /** Add the server's proposals that are not on screen yet (they arrived after the frame). */
  addProposals(annotations) {
    const known = new Set([...this.boxes.values()].map((box) => box.id));
    let added = 0;
    for (const annotation of annotations) {
      if (annotation.status !== Status.PROPOSED || known.has(annotation.id)) continue;
      this.boxes.set(serverKey(annotation.id), boxFromAnnotation(annotation));
      added += 1;
    }
    if (added) this.changed();
  }

  get(key) {
    return this.boxes.get(key) || null;
  }

  get selected() {
    return this.get(this.selectedKey);
  }

  findById(id) {
    for (const box of this.boxes.values()) if (box.id === id) return box;
    return null;
  }

  /** Boxes in reading order (top to bottom, then left to right), for Tab cycling. */
  ordered() {
    if (!this.#ordered) {
      this.#ordered = [...this.boxes.values()].sort((a, b) => a.box[1] - b.box[1] || a.box[0] - b.box[0]);
    }
    return this.#ordered;
  }

  upsert(box) {
    this.boxes.set(box.key, box);
    this.changed();
  }

  patch(key, changes) {
    const box = this.boxes.get(key);
    if (!box) return;
    Object.assign(box, changes);
    if (box.status === Status.REJECTED) this.boxes.delete(key);
    this.changed();
  }

  remove(key) {
    this.boxes.delete(key);
    if (this.selectedKey === key) this.selectedKey = null;
    this.changed();
  }

  select(key) {
    this.selectedKey = key && this.boxes.has(key) ? key : null;
    this.changed();
  }

  changed() {
    this.revision += 1;
    this.#ordered = null;
    if (this.selectedKey && !this.boxes.has(this.selectedKey)) this.selectedKey = null;
    this.dispatchEvent(new Event("change"));
  }

  execute(command) {
    command.do();
    this.#undoStack.push(command);
    this.#redoStack = [];
  }

  /** Undo the last command; returns a sentence for the status line. */
  undo() {
    const command = this.#undoStack.pop();
    if (!command) return "Nothing to undo.";
    if (!command.undo) return `${command.description} is final on the server and cannot be undone.`;
    command.undo();
    this.#redoStack.push(command);
    return `Undone: ${command.description}.`;
  }

  redo() {
    const command = this.#redoStack.pop();
    if (!command) return "Nothing to redo.";
    command.do();
    this.#undoStack.push(command);
    return `Redone: ${command.description}.`;
  }

  /** Forget history that refers to a box someone else now owns the truth of. */
  forgetHistoryOf(key) {
    const keep = (command) => !command.keys.includes(key);
    this.#undoStack = this.#undoStack.filter(keep);
    this.#redoStack = this.#redoStack.filter(keep);
  }
}
