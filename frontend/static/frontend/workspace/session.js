// Moving between frames: the next frame of the queue, completing or skipping a frame, stepping
// through a shot. Frames come from the prefetch cache, so the screen changes at once;
// the server calls (complete, then claim the next) follow in the save queue, in order.

const NEXT_MARK = "labeller:next-start";
const SKIPPED_IS_BACK = "Nothing else is waiting in your queue, so the frame you skipped is back.";
// While the server rebuilds a frame's proposals from what it just learned, ask again this often, this long.
const PROPOSALS_POLL_MS = 250;
const PROPOSALS_WAIT_MS = 15000;

export class FrameSession {
  current = null; // the frame on screen (detail without its annotations)
  claimedId = null; // the frame the queue handed us and holds for us

  constructor({ store, queue, cache, renderer, filmstrip, panel, metrics, editor, notify, showEmpty, onShown, onSynced = () => {}, mayCompleteAny = false }) {
    Object.assign(this, { store, queue, cache, renderer, filmstrip, panel, metrics, editor, notify, showEmpty, onShown, onSynced, mayCompleteAny });
  }

  start() {
    this.cache.refreshUpcoming([]).catch(() => {});
  }

  /** N: open the next frame of the queue. */
  openNext() {
    if (this.#holdingCurrent()) {
      this.notify("This is your next frame: finish it and press Space to move on, or S to skip it.");
      return;
    }
    if (!this.#mayLeave()) return;
    performance.mark(NEXT_MARK);
    return this.#advance();
  }

  /** Space / Enter: mark the frame complete (the server rejects leftover proposals) and move on. */
  complete() {
    if (!this.current) return;
    if (this.current.status === "complete") {
      this.notify("This frame is already complete: press N for the next frame of your queue.");
      return;
    }
    if (!this.#holdingCurrent() && !this.mayCompleteAny) {
      // Completing turns the frame's open proposals into hard negatives: that is for whoever holds it.
      this.notify("Only the frame the queue gave you can be completed: press N to open it.");
      return;
    }
    if (!this.#mayLeave()) return;
    this.editor.flushNudge();
    const frameId = this.current.id;
    performance.mark(NEXT_MARK);
    this.queue.enqueue({ type: "complete", frameId }).then((frame) => {
      if (!frame) return;
      this.filmstrip.setStatus(frame.id, frame.status);
      this.panel.refresh();
    });
    this.current.status = "complete";
    this.filmstrip.setStatus(frameId, "complete");
    if (this.claimedId === frameId) this.claimedId = null;
    return this.#advance();
  }

  /** S: give the frame back to the queue, below its peers, and open the next one. */
  skip() {
    if (!this.#holdingCurrent()) {
      this.notify("Only the frame the queue gave you can be skipped: press N to open it.");
      return;
    }
    if (!this.#mayLeave()) return;
    this.editor.flushNudge();
    const frameId = this.current.id;
    performance.mark(NEXT_MARK);
    // Queued behind this frame's edits, and ahead of the claim below, so the server hands out another frame.
    this.queue.enqueue({ type: "release", frameId, skip: true }).then((frame) => {
      if (frame) this.filmstrip.setStatus(frame.id, frame.status);
    });
    this.claimedId = null;
    return this.#advance({ skippedId: frameId });
  }

  /** ← / →: the previous or next frame of the shot (not claimed; anyone may label it). */
  async step(direction) {
    if (!this.current) return;
    const neighbour = this.filmstrip.neighbour(this.current.id, direction);
    if (!neighbour) {
      this.notify(this.current.shot_id ? `This is the ${direction < 0 ? "first" : "last"} frame of the shot.` : "This frame is not part of a shot.");
      return;
    }
    return this.open(neighbour);
  }

  /** Open a frame by its summary (from the filmstrip or the queue). */
  async open(frame) {
    if (!this.#mayLeave()) return;
    this.editor.flushNudge();
    this.#show(await this.cache.load(frame.id, frame.image_url));
  }

  /** skippedId: the frame just skipped, which the queue gives back only when nothing else is left. */
  async #advance({ skippedId = null } = {}) {
    const target = this.#predictNext();
    const claim = this.queue.enqueue({ type: "claim" });
    if (target) {
      // Show the frame the queue will most likely hand out; the claim below confirms it.
      this.claimedId = target.id;
      this.#show(await this.cache.load(target.id, target.image_url), { measured: true, claimPending: true });
      claim.then((frame) => this.#claimed(frame, target.id, skippedId));
      return;
    }
    this.showEmpty("Opening the next frame…");
    const frame = await claim;
    if (!frame) {
      this.#queueEmpty();
      return;
    }
    if (frame.id === skippedId) this.notify(SKIPPED_IS_BACK);
    this.claimedId = frame.id;
    this.#show(await this.cache.load(frame.id, frame.image_url), { measured: true });
    this.#refreshUpcoming();
  }

  #predictNext() {
    const onScreen = this.current?.id;
    // A frame we hold and have not finished comes first in the queue (the server resumes it).
    if (this.claimedId && this.claimedId !== onScreen) return { id: this.claimedId, image_url: null };
    return this.cache.upcoming.find((frame) => frame.id !== onScreen) || null;
  }

  #claimed(frame, expectedId, skippedId) {
    if (frame && frame.id === expectedId) {
      if (this.current?.id === frame.id && this.current.status !== "complete") {
        this.current.status = frame.status; // the prefetched copy predates the claim
        this.filmstrip.setStatus(frame.id, frame.status);
        this.onShown(this.current);
        this.#revalidate(frame.id); // the claim may have asked for fresh proposals
      }
      this.#refreshUpcoming();
      return;
    }
    this.claimedId = frame ? frame.id : null;
    if (this.current?.id !== expectedId) return;
    if (!frame) {
      this.notify("The queue has no frame for you any more: this one was finished or taken meanwhile.");
      return;
    }
    this.notify(
      frame.id === skippedId
        ? SKIPPED_IS_BACK
        : `The queue handed out frame ${frame.index} instead (someone else took the one shown).`,
    );
    this.open(frame);
    this.#refreshUpcoming();
  }

  #queueEmpty() {
    this.current = null;
    this.store.loadFrame(null, []);
    this.renderer.setImage(null);
    this.filmstrip.show({});
    this.showEmpty("Your queue is empty. Nice work!");
  }

  #refreshUpcoming() {
    this.cache.refreshUpcoming(this.current ? [this.current.id] : []).catch(() => {});
  }

  #holdingCurrent() {
    return Boolean(this.current && this.current.id === this.claimedId && this.current.status !== "complete");
  }

  #mayLeave() {
    const drafts = [...this.store.boxes.values()].filter((box) => box.isDraft);
    if (!drafts.length) return true;
    this.store.select(drafts[0].key);
    this.notify("Label the new box (press /) or delete it (Delete) before leaving the frame.");
    return false;
  }

  #show({ detail, image }, { measured = false, claimPending = false } = {}) {
    const { annotations, ...frame } = detail;
    this.current = frame;
    // Proposals appear once the frame is ours and they are fresh: claiming a frame may rebuild
    // them from what the model just learned, and nobody should act on a box about to go.
    const waitForProposals = claimPending || frame.proposals_state === "refreshing";
    this.store.loadFrame(frame, waitForProposals ? annotations.filter((a) => a.status !== "proposed") : annotations);
    for (const annotation of annotations) this.queue.track(`s${annotation.id}`, annotation.id, annotation.version);
    this.renderer.setImage(image);
    this.renderer.preview = null;
    this.renderer.fit();
    if (measured) this.renderer.requestDraw(() => this.metrics.frameShown(NEXT_MARK));
    this.showEmpty(null);
    this.onShown(frame);
    this.cache.pin([frame.id]);
    this.filmstrip.show(frame).then(() => this.#prefetchNeighbours(frame));
    if (!claimPending) this.#revalidate(frame.id);
  }

  #prefetchNeighbours(frame) {
    const neighbours = [this.filmstrip.neighbour(frame.id, -1), this.filmstrip.neighbour(frame.id, 1)].filter(Boolean);
    this.cache.pin([frame.id, ...neighbours.map((neighbour) => neighbour.id)]);
    for (const neighbour of neighbours) this.cache.load(neighbour.id, neighbour.image_url).catch(() => {});
  }

  /** The cached frame may be a little old: fetch it again and take in what changed meanwhile. */
  async #revalidate(frameId) {
    await this.queue.whenIdle();
    const editsBefore = this.queue.enqueuedCount;
    const detail = await this.cache.refreshDetail(frameId).catch(() => null);
    if (!detail || this.current?.id !== frameId) return;
    this.#takeIn(detail, editsBefore);
    this.onSynced(this.current);
    if (detail.proposals_state === "refreshing") this.#awaitProposals(frameId, editsBefore);
  }

  /** The server is rebuilding the frame's proposals from what it just learned: add them when they come. */
  async #awaitProposals(frameId, editsBefore) {
    const deadline = performance.now() + PROPOSALS_WAIT_MS;
    let detail = null;
    while (this.current?.id === frameId && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, PROPOSALS_POLL_MS));
      detail = await this.cache.refreshDetail(frameId).catch(() => null);
      if (detail && detail.proposals_state !== "refreshing") break;
    }
    if (detail && this.current?.id === frameId && detail.proposals_state !== "refreshing") this.#takeIn(detail, editsBefore);
  }

  #takeIn(detail, editsBefore) {
    const { annotations, ...frame } = detail;
    // Proposals on their way replace nothing yet: show them when they arrive.
    const shown = frame.proposals_state === "refreshing" ? annotations.filter((a) => a.status !== "proposed") : annotations;
    for (const annotation of shown) this.queue.track(`s${annotation.id}`, annotation.id, annotation.version);
    if (this.queue.enqueuedCount !== editsBefore) {
      // The person is already at work: keep their state and only add the proposals that arrived.
      this.store.addProposals(shown);
      return;
    }
    this.current = { ...frame, status: this.current.status === "complete" ? "complete" : frame.status };
    this.store.frame = this.current;
    this.store.mergeServer(shown);
  }

  /** After a change the server refused: show the frame as the server has it. */
  reload() {
    if (this.current) this.#revalidate(this.current.id);
  }
}
