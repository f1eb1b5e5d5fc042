// The workspace page: builds the parts and wires the keyboard, the side panel and the save state.

import { api, listAll } from "../api.js";
import { FrameRenderer } from "./canvas.js";
import { ConflictDialog } from "./conflict.js";
import { Editor } from "./editing.js";
import { Filmstrip } from "./filmstrip.js";
import { renderHelp } from "./help.js";
import { actionFor, isReservedKey } from "./keys.js";
import { Metrics } from "./metrics.js";
import { StatsPanel } from "./panel.js";
import { LabelPicker } from "./picker.js";
import { PointerTool } from "./pointer.js";
import { FrameCache } from "./prefetch.js";
import { FrameSession } from "./session.js";
import { BoxIndex } from "./spatial.js";
import { Status, WorkspaceStore, boxFromAnnotation, isProposal } from "./store.js";
import { SaveQueue, SaveState } from "./sync.js";
import { Viewport } from "./viewport.js";

const $ = (selector) => document.querySelector(selector);
const root = $("#workspace");
const config = { org: root.dataset.org, projectId: Number(root.dataset.projectId), username: root.dataset.username };
const orgPath = `orgs/${config.org}`;

// --- labels ---------------------------------------------------------------------------

const [labels, organization] = await Promise.all([
  listAll(`${orgPath}/projects/${config.projectId}/labels/?page_size=1000`),
  api(`${orgPath}/`),
]);
const labelById = new Map(labels.map((label) => [label.id, label]));
const labelOf = (id) => labelById.get(id) || null;
const labelName = (id) => labelOf(id)?.name ?? (id === null ? "no label" : `label ${id}`);
// Label hotkeys work where no workspace shortcut already claims the key.
const labelByHotkey = new Map(
  labels.filter((label) => label.hotkey && !label.deprecated && !isReservedKey(label.hotkey)).map((label) => [label.hotkey.toLowerCase(), label]),
);

// --- notices --------------------------------------------------------------------------

const notice = $("#notice");
let noticeTimer = 0;
function notify(message, { error = false } = {}) {
  notice.textContent = message;
  notice.classList.toggle("error", error);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.hidden = true), error ? 12_000 : 5_000);
}

// --- the parts ------------------------------------------------------------------------

const metrics = new Metrics();
const store = new WorkspaceStore();
const viewport = new Viewport();
const imageCanvas = $("#image-layer");
const renderer = new FrameRenderer({ imageCanvas, boxCanvas: $("#box-layer"), viewport, store, labelOf, metrics });
const conflicts = new ConflictDialog({ dialog: $("#conflict-dialog"), labelName });
const picker = new LabelPicker({ dialog: $("#picker-dialog"), labels: () => labels });
const cache = new FrameCache({ orgPath, projectId: config.projectId });
const panel = new StatsPanel({ element: $("#stats-panel"), orgPath, projectId: config.projectId });

const queue = new SaveQueue({
  orgPath,
  projectId: config.projectId,
  storageKey: `labeller:unsaved:${config.username}:${config.org}:${config.projectId}`,
  resolveConflict,
  onSaved,
  onLost,
});

const editor = new Editor({
  store,
  queue,
  renderer,
  viewport,
  picker,
  orgPath,
  notify,
  threshold: $("#threshold"),
});

const filmstrip = new Filmstrip({
  element: $("#filmstrip"),
  orgPath,
  projectId: config.projectId,
  onOpen: (frame) => session.open(frame),
});

const session = new FrameSession({
  store,
  queue,
  cache,
  renderer,
  filmstrip,
  panel,
  metrics,
  editor,
  notify,
  showEmpty,
  onShown: showCaption,
  // Says which frame's boxes now hold the server's latest state; its proposals may still be on
  // their way (tools and tests wait on it).
  onSynced: (frame) => {
    caption.dataset.syncedFrame = String(frame.id);
  },
  // Completing a frame someone else holds (or nobody) judges their work: reviewers and admins only.
  mayCompleteAny: organization.role === "reviewer" || organization.role === "admin",
});

const boxIndex = new BoxIndex();
let indexedRevision = -1;
function boxAt(x, y) {
  if (indexedRevision !== store.revision) {
    boxIndex.rebuild(store.boxes.values());
    indexedRevision = store.revision;
  }
  return boxIndex.hit(x, y);
}

const pointer = new PointerTool({
  element: $("#box-layer"),
  viewport,
  renderer,
  store,
  boxAt,
  onDraw: (box) => editor.drawn(box),
  onReshape: (key, from, to) => editor.reshaped(key, from, to),
  onSelect: (key) => store.select(key),
});

// --- saving: what the queue reports back -------------------------------------------------

function onSaved(op, result) {
  panel.refreshSoon();
  if (!op.key || op.type === "delete" || !result) return;
  const box = store.get(op.key);
  if (!box) return;
  // While later edits to this box are queued, only its id is news; the rest is already newer here.
  if (queue.isPending(op.key)) store.patch(op.key, { id: result.id });
  else store.patch(op.key, { ...boxFromAnnotation(result), key: op.key, isDraft: false });
}

function onLost(op, message) {
  notify(`A change could not be saved (${op.type}): ${message}. The frame now shows what the server has.`, { error: true });
  session.reload();
}

async function resolveConflict(op, current) {
  const mine = store.get(op.key);
  const choice = await conflicts.ask(op, current, mine);
  if (choice === "theirs") {
    store.forgetHistoryOf(op.key);
    if (current.status === Status.REJECTED) store.remove(op.key);
    else store.upsert({ ...boxFromAnnotation(current), key: op.key });
    notify("Kept the other version.");
  } else {
    notify("Saving your version over the other one.");
  }
  return choice;
}

const saveStatus = $("#save-status");
const retryButton = $("#retry-now");
let countdown = 0;
function showSaveState() {
  const count = queue.unsavedCount;
  const changes = `${count} change${count === 1 ? "" : "s"}`;
  let text = count ? `Saving ${changes}…` : "All changes saved";
  if (queue.state === SaveState.RETRYING) {
    const seconds = Math.max(0, Math.ceil((queue.retryAt - Date.now()) / 1000));
    text = `Unsaved changes (${changes}): ${queue.lastError}; retrying in ${seconds} s`;
  } else if (queue.state === SaveState.CONFLICT) {
    text = `Unsaved changes (${changes}): waiting for your choice on a conflicting edit`;
  }
  saveStatus.textContent = text;
  saveStatus.dataset.state = count ? queue.state : SaveState.SAVED;
  retryButton.hidden = queue.state !== SaveState.RETRYING;
  clearInterval(countdown);
  if (queue.state === SaveState.RETRYING) countdown = setInterval(showSaveState, 500);
}
queue.addEventListener("change", showSaveState);
retryButton.addEventListener("click", () => queue.retryNow());
window.addEventListener("beforeunload", (event) => {
  // The changes are kept in this browser either way; the prompt says they are not on the server yet.
  if (queue.unsavedCount) event.preventDefault();
});

// --- what the page shows ----------------------------------------------------------------

const emptyState = $("#empty-state");
function showEmpty(message) {
  emptyState.hidden = !message;
  if (message) emptyState.querySelector("p").textContent = message;
}

const caption = $("#frame-caption");
function showCaption() {
  const frame = store.frame;
  if (!frame) {
    caption.textContent = "";
    return;
  }
  let proposals = 0;
  for (const box of store.boxes.values()) if (isProposal(box)) proposals += 1;
  const source = frame.video_id ? `video ${frame.video_id}, frame ${frame.index}` : frame.original_name || `image ${frame.id}`;
  caption.textContent = [
    source,
    frame.is_keyframe ? "keyframe" : null,
    frame.status.replace("_", " "),
    `${frame.width}×${frame.height}`,
    `${store.boxes.size} boxes, ${proposals} proposals`,
  ]
    .filter(Boolean)
    .join(" · ");
}

const selection = $("#selection-details");
const acceptButton = $("#accept-button");
const rejectButton = $("#reject-button");
const labelButton = $("#label-button");
function showSelection() {
  const box = store.selected;
  acceptButton.disabled = !box || !isProposal(box);
  rejectButton.disabled = !box;
  labelButton.disabled = !box;
  rejectButton.textContent = box && !isProposal(box) ? "Delete (Del)" : "Reject (R)";
  if (!box) {
    selection.textContent = "Nothing selected: click a box or press Tab.";
    return;
  }
  const kind = box.isDraft ? "New box, not saved until labelled" : isProposal(box) ? `Proposal from ${box.source}` : "Confirmed";
  const score = box.score === null || box.score === undefined ? "" : ` · ${Math.round(box.score * 100)}%`;
  const lines = [`${labelName(box.labelId)}`, `${kind}${score}`, `[${box.box.map((value) => Math.round(value)).join(", ")}]`];
  const suggestions = [...box.suggestions].sort((a, b) => b.score - a.score).slice(0, 3);
  const list = document.createElement("ol");
  list.className = "suggestions";
  list.setAttribute("aria-label", "Suggested labels (press 1-3)");
  for (const suggestion of suggestions) {
    const item = document.createElement("li");
    item.textContent = `${labelName(suggestion.label_id)} ${Math.round(suggestion.score * 100)}%`;
    list.append(item);
  }
  selection.replaceChildren(...lines.map((line) => Object.assign(document.createElement("div"), { textContent: line })));
  if (suggestions.length) selection.append(list);
}

store.addEventListener("change", () => {
  renderer.requestDraw();
  showSelection();
  showCaption();
});

// --- side panel controls --------------------------------------------------------------

function bindRange(input, output, onValue) {
  const update = () => {
    output.textContent = Number(input.value).toFixed(2);
    onValue(Number(input.value));
  };
  input.addEventListener("input", update);
  update();
}

const display = { brightness: 1, contrast: 1 };
function applyDisplay() {
  // A CSS filter on the image layer only: the boxes keep their true colours. None at all
  // when neutral, since a filter costs the compositor work on every frame.
  const neutral = display.brightness === 1 && display.contrast === 1;
  imageCanvas.style.filter = neutral ? "" : `brightness(${display.brightness}) contrast(${display.contrast})`;
}
bindRange($("#brightness"), $("#brightness-value"), (value) => ((display.brightness = value), applyDisplay()));
bindRange($("#contrast"), $("#contrast-value"), (value) => ((display.contrast = value), applyDisplay()));
bindRange($("#threshold"), $("#threshold-value"), () => {});
$("#reset-display").addEventListener("click", () => {
  for (const id of ["brightness", "contrast"]) {
    $(`#${id}`).value = 1;
    $(`#${id}`).dispatchEvent(new Event("input"));
  }
});

const helpDialog = $("#help-dialog");
renderHelp(helpDialog.querySelector(".shortcuts"), labels);
function toggleHelp() {
  if (helpDialog.open) helpDialog.close();
  else helpDialog.showModal();
}

function zoomAtCentre(factor) {
  viewport.zoomAt(factor, renderer.width / 2, renderer.height / 2);
  renderer.requestDraw();
}

const actions = {
  nextFrame: () => session.openNext(),
  completeFrame: () => session.complete(),
  skipFrame: () => session.skip(),
  accept: () => editor.accept(),
  acceptAbove: () => editor.acceptAbove(),
  reject: () => editor.rejectOrDelete(),
  suggestion1: () => editor.applySuggestion(1),
  suggestion2: () => editor.applySuggestion(2),
  suggestion3: () => editor.applySuggestion(3),
  openPicker: () => editor.openPicker(),
  selectNext: () => editor.cycle(1),
  selectPrevious: () => editor.cycle(-1),
  deselect: () => pointer.cancel() || store.select(null),
  nudge: (event) => arrow(event, 1, false),
  nudgeFar: (event) => arrow(event, 10, false),
  resize: (event) => arrow(event, 1, true),
  resizeFar: (event) => arrow(event, 10, true),
  undo: () => notify(store.undo()),
  redo: () => notify(store.redo()),
  zoomIn: () => zoomAtCentre(1.25),
  zoomOut: () => zoomAtCentre(0.8),
  zoomFit: () => renderer.fit(),
  focusPanel: () => (root.querySelector(".sidebar").contains(document.activeElement) ? $("#stage") : $("#accept-button")).focus(),
  help: toggleHelp,
};

for (const button of root.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => actions[button.dataset.action]());
  // A click must not leave focus on the button, or Space would press it again instead of completing the frame.
  button.addEventListener("mousedown", (event) => event.preventDefault());
}

const ARROW_STEPS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const PAN_STEP = 60;
function arrow(event, distance, resize) {
  const [dx, dy] = ARROW_STEPS[event.key];
  if (store.selected) {
    editor.nudge(dx * distance, dy * distance, { resize });
  } else if (distance > 1 && !resize) {
    viewport.panBy(-dx * PAN_STEP, -dy * PAN_STEP);
    renderer.requestDraw();
  } else if (!resize && dx) {
    session.step(dx);
  }
}

// --- the keyboard ---------------------------------------------------------------------

const EDIT_ACTIONS = new Set(["nudge", "nudgeFar", "resize", "resizeFar"]);

/** Keys the focused control needs for itself (typing, sliders, buttons). */
function keyBelongsToControl(event) {
  const target = event.target;
  if (target.matches("input[type=text], input[type=search], textarea, select, [contenteditable]")) return true;
  if (target.matches("input[type=range]")) return /^(Arrow|Home|End|Page|Tab)/.test(event.key);
  if (target.matches("button, a[href]")) return [" ", "Enter", "Tab"].includes(event.key);
  return false;
}

document.addEventListener("keydown", (event) => {
  if (document.querySelector("dialog[open]")) {
    if (helpDialog.open && event.key === "?") helpDialog.close();
    return; // the open dialog handles its own keys
  }
  if (keyBelongsToControl(event)) return;
  if (event.key === " ") {
    // Space alone completes the frame (on release); held down while dragging, it pans.
    event.preventDefault();
    if (!event.repeat) {
      pointer.spaceHeld = true;
      pointer.pannedWhileSpaceHeld = false;
    }
    return;
  }
  const action = actionFor(event);
  if (!action) {
    const label = !event.ctrlKey && !event.metaKey && !event.altKey && labelByHotkey.get(event.key.toLowerCase());
    if (label && store.selected) {
      event.preventDefault();
      editor.applyLabel(store.selectedKey, label.id);
    }
    return;
  }
  event.preventDefault();
  if (!EDIT_ACTIONS.has(action)) editor.flushNudge();
  actions[action](event);
});

document.addEventListener("keyup", (event) => {
  if (event.key !== " " || !pointer.spaceHeld) return;
  pointer.spaceHeld = false;
  if (!pointer.pannedWhileSpaceHeld && !document.querySelector("dialog[open]")) actions.completeFrame();
});

// --- start ----------------------------------------------------------------------------

if (queue.restoredCount) notify(`Sending ${queue.restoredCount} changes kept in this browser from your last visit…`);
queue.start();
showSaveState();
showSelection();
session.start();
panel.start();
$("#stage").focus();
root.dataset.ready = "true";
