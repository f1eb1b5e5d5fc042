// Every edit an annotator makes, as an undoable command that changes the store at once
// (optimistic UI) and queues the matching API call; undo queues the inverse call.

import { Source, Status } from "./store.js";

/** A drawn box gets its label: it is saved as a confirmed box. Undo deletes it, redo creates it again. */
export function createBox({ store, queue, frameId, draft, labelId }) {
  const created = { ...draft, labelId, status: Status.CONFIRMED, source: Source.HUMAN, isDraft: false, id: null };
  return {
    description: "Draw box",
    keys: [draft.key],
    do() {
      store.upsert({ ...created, box: created.box.slice() });
      store.select(created.key);
      queue.enqueue({ type: "create", key: created.key, frameId, box: created.box, labelId });
    },
    undo() {
      store.remove(created.key);
      queue.enqueue({ type: "delete", key: created.key });
    },
  };
}

/** Delete a confirmed box. Undo creates it again (as the annotator's own box, with a new id). */
export function deleteBox({ store, queue, frameId, key }) {
  const snapshot = { ...store.get(key) };
  return {
    description: "Delete box",
    keys: [key],
    do() {
      store.remove(key);
      queue.enqueue({ type: "delete", key });
    },
    undo() {
      store.upsert({ ...snapshot, id: null, box: snapshot.box.slice(), source: Source.HUMAN, status: Status.CONFIRMED });
      queue.enqueue({ type: "create", key, frameId, box: snapshot.box, labelId: snapshot.labelId });
    },
  };
}

/** Move or resize. Fixing a model proposal makes it the annotator's confirmed box, as on the server. */
export function reshapeBox({ store, queue, key, from, to }) {
  const before = store.get(key);
  const wasProposal = before.status === Status.PROPOSED && before.source !== Source.HUMAN;
  const apply = (box) => {
    const changes = { box: box.slice() };
    if (wasProposal) Object.assign(changes, { status: Status.CONFIRMED, source: Source.HUMAN });
    store.patch(key, changes);
    queue.enqueue({ type: "update", key, box });
  };
  return {
    description: "Move box",
    keys: [key],
    do: () => apply(to),
    // The geometry goes back; a fixed proposal stays confirmed (the server has no way back to "proposed").
    undo: () => apply(from),
  };
}

/** Change the label of a confirmed box. */
export function relabelBox({ store, queue, key, labelId }) {
  const previous = store.get(key).labelId;
  const apply = (id) => {
    store.patch(key, { labelId: id });
    queue.enqueue({ type: "update", key, labelId: id });
  };
  return { description: "Change label", keys: [key], do: () => apply(labelId), undo: () => apply(previous) };
}

/** Accept proposals, optionally with another label. Final: the server cannot make them proposals again. */
export function acceptProposals({ store, queue, keys, labelId = null }) {
  return {
    description: keys.length === 1 ? "Accepting a proposal" : `Accepting ${keys.length} proposals`,
    keys,
    do() {
      for (const key of keys) {
        store.patch(key, { status: Status.CONFIRMED, ...(labelId === null ? {} : { labelId }) });
        queue.enqueue({ type: "confirm", key, labelId });
      }
    },
    undo: null,
  };
}

/** Reject a proposal: it stays on the server as a hard negative for the model. Final. */
export function rejectProposal({ store, queue, key }) {
  return {
    description: "Rejecting a proposal",
    keys: [key],
    do() {
      store.remove(key);
      queue.enqueue({ type: "reject", key });
    },
    undo: null,
  };
}
