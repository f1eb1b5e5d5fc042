// The save queue: every edit is an API call sent in order, one at a time, retried with
// backoff while the server is unreachable, and kept in localStorage until it succeeds,
// so a closed tab or a crash does not lose it. A stale version (409) is never
// overwritten: the queue stops and asks the annotator which version wins.
//
// Operations name boxes by key, not id: a box drawn a moment ago has no id until its
// create succeeds, and later edits to it are already queued behind that create. The id
// and the version each call must send are looked up when the call is made.
//
// A create carries an Idempotency-Key, fixed when it is queued and kept with it: when an
// answer is lost after the server saved the box, the retry gets that box back instead of
// making a second one.

import { api, ApiError } from "../api.js";

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 15_000;

// Calls about holding a frame, not about its boxes: they are not "unsaved changes" and are not
// kept for a later visit (a claim or release then would be about a frame long moved on from).
const SESSION_OPS = new Set(["claim", "release"]);

export const SaveState = Object.freeze({ SAVED: "saved", SAVING: "saving", RETRYING: "retrying", CONFLICT: "conflict" });

export class SaveQueue extends EventTarget {
  state = SaveState.SAVED;
  enqueuedCount = 0;
  retryAt = null;
  lastError = "";
  #ops = [];
  #identities = new Map(); // box key -> {id, version} as the server last acknowledged it
  #resolvers = new WeakMap();
  #running = false;
  #wake = null;

  /**
   * resolveConflict(op, current) -> Promise<"mine" | "theirs">; onSaved(op, result);
   * onLost(op, message) for a change the server refused for good.
   */
  constructor({ orgPath, projectId, storageKey, resolveConflict, onSaved, onLost }) {
    super();
    Object.assign(this, { orgPath, projectId, storageKey, resolveConflict, onSaved, onLost });
    this.#restore();
    window.addEventListener("online", () => this.retryNow());
  }

  /** Ops restored from a previous page load, if any (they are sent once start() runs). */
  get restoredCount() {
    return this.#ops.length;
  }

  get unsavedCount() {
    return this.#ops.filter((op) => !SESSION_OPS.has(op.type)).length;
  }

  start() {
    this.#pump();
  }

  track(key, id, version) {
    const known = this.#identities.get(key);
    if (known && known.id === id && known.version > version) return; // a cached frame can predate our own saves
    this.#identities.set(key, { id, version });
  }

  /** Resolves once every queued change is saved (or dropped). */
  whenIdle() {
    if (!this.unsavedCount) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.unsavedCount) return;
        this.removeEventListener("change", check);
        resolve();
      };
      this.addEventListener("change", check);
    });
  }

  identity(key) {
    return this.#identities.get(key) || null;
  }

  isPending(key) {
    return this.#ops.some((op) => op.key === key);
  }

  /** Queue an API call; resolves with the server's answer, or null if it was dropped. */
  enqueue(op) {
    if (op.type === "create") op.idempotencyKey = newIdempotencyKey();
    const promise = new Promise((resolve) => this.#resolvers.set(op, resolve));
    this.#ops.push(op);
    this.enqueuedCount += 1;
    this.#persist();
    this.#pump();
    return promise;
  }

  retryNow() {
    if (this.#wake) this.#wake();
  }

  async #pump() {
    if (this.#running) return;
    this.#running = true;
    let attempt = 0;
    while (this.#ops.length) {
      const op = this.#ops[0];
      this.#setState(SaveState.SAVING);
      try {
        const result = await this.#send(op);
        attempt = 0;
        this.#settle(op, result);
        this.onSaved(op, result);
      } catch (error) {
        if (isTransient(error)) {
          attempt += 1;
          await this.#backoff(attempt, error);
        } else if (error instanceof ApiError && error.status === 409 && error.body?.code === "stale_version") {
          await this.#resolveStale(op, error.body.current);
        } else {
          this.#dropKey(op);
          this.onLost(op, describe(error));
        }
      }
    }
    this.#running = false;
    this.lastError = "";
    this.#setState(SaveState.SAVED);
  }

  async #send(op) {
    if (op.type === "create" && !op.idempotencyKey) {
      op.idempotencyKey = newIdempotencyKey(); // queued by an older page that sent none
      this.#persist();
    }
    const { method, path, body, headers } = this.#request(op);
    return api(path, { method, body, headers });
  }

  #request(op) {
    const org = this.orgPath;
    switch (op.type) {
      case "create":
        return {
          method: "POST",
          path: `${org}/frames/${op.frameId}/annotations/`,
          body: { box: op.box, label_id: op.labelId },
          headers: { "Idempotency-Key": op.idempotencyKey },
        };
      case "complete":
        return { method: "POST", path: `${org}/frames/${op.frameId}/complete` };
      case "claim":
        return { method: "POST", path: `${org}/projects/${this.projectId}/queue/next` };
      case "release":
        return { method: "POST", path: `${org}/frames/${op.frameId}/release`, body: { skip: op.skip } };
    }
    const identity = this.#identities.get(op.key);
    if (!identity) throw new GoneError();
    const path = `${org}/annotations/${identity.id}`;
    const version = identity.version;
    switch (op.type) {
      case "update": {
        const body = { version };
        if (op.box) body.box = op.box;
        if (op.labelId !== undefined) body.label_id = op.labelId;
        return { method: "PATCH", path, body };
      }
      case "confirm":
        return { method: "POST", path: `${path}/confirm`, body: op.labelId === null ? { version } : { version, label_id: op.labelId } };
      case "reject":
        return { method: "POST", path: `${path}/reject`, body: { version } };
      case "delete":
        return { method: "DELETE", path: `${path}?version=${version}` };
    }
    throw new Error(`Unknown save operation ${op.type}`);
  }

  #settle(op, result) {
    this.#ops.shift();
    if (op.key) {
      if (op.type === "delete") this.#identities.delete(op.key);
      else this.#identities.set(op.key, { id: result.id, version: result.version });
    }
    this.#persist();
    this.#resolvers.get(op)?.(result);
  }

  async #resolveStale(op, current) {
    this.#setState(SaveState.CONFLICT);
    const choice = await this.resolveConflict(op, current);
    this.#identities.set(op.key, { id: current.id, version: current.version });
    if (choice === "theirs") this.#dropKey(op);
    this.#persist();
  }

  /** Drop ``op`` and every later op on the same box: they were built on a change that did not happen. */
  #dropKey(op) {
    const dropped = op.key ? this.#ops.filter((candidate) => candidate.key === op.key) : [op];
    this.#ops = this.#ops.filter((candidate) => !dropped.includes(candidate));
    for (const candidate of dropped) this.#resolvers.get(candidate)?.(null);
    this.#persist();
  }

  async #backoff(attempt, error) {
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
    this.retryAt = Date.now() + delay;
    this.lastError = describe(error);
    this.#setState(SaveState.RETRYING);
    await new Promise((resolve) => {
      this.#wake = resolve;
      setTimeout(resolve, delay);
    });
    this.#wake = null;
    this.retryAt = null;
  }

  #setState(state) {
    this.state = state;
    this.dispatchEvent(new Event("change"));
  }

  #persist() {
    const ops = this.#ops.filter((op) => !SESSION_OPS.has(op.type));
    const keys = new Set(ops.map((op) => op.key).filter(Boolean));
    const identities = [...this.#identities].filter(([key]) => keys.has(key));
    try {
      if (ops.length) localStorage.setItem(this.storageKey, JSON.stringify({ ops, identities }));
      else localStorage.removeItem(this.storageKey);
    } catch {
      // Storage full or disabled: the queue still holds the ops in memory and keeps retrying.
    }
  }

  #restore() {
    try {
      const saved = JSON.parse(localStorage.getItem(this.storageKey) || "null");
      if (!saved) return;
      this.#ops = saved.ops;
      for (const [key, identity] of saved.identities) this.#identities.set(key, identity);
    } catch {
      localStorage.removeItem(this.storageKey);
    }
  }
}

/** 128 random bits in hex. crypto.randomUUID needs a secure context; this works over plain HTTP too. */
function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

class GoneError extends Error {
  constructor() {
    super("The box was never saved, so this change to it cannot be either.");
  }
}

function isTransient(error) {
  if (!(error instanceof ApiError)) return !(error instanceof GoneError); // fetch failed: offline or server down
  return error.status >= 500 || error.status === 408 || error.status === 429;
}

function describe(error) {
  if (!(error instanceof ApiError)) return error instanceof GoneError ? error.message : "the server cannot be reached";
  if (error.status >= 500) return `the server answered ${error.status}`;
  return error.message;
}
