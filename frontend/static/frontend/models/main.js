// The models page (admins): retrain the detector or the embedding, watch a run's progress and
// loss live, cancel it, compare a version's scores with the version in use when it was
// trained, and put any version into use (rollback).

import { api, listAll } from "../api.js";
import { h } from "../project/dom.js";
import { barChart, lineChart } from "./charts.js";

const POLL_MS = 1500;
const $ = (selector) => document.querySelector(selector);
const root = $("#models-page");
const projectId = Number(root.dataset.projectId);
const orgPath = `orgs/${root.dataset.org}`;
const runsPath = `${orgPath}/projects/${projectId}/training-runs/`;
const ACTIVE = new Set(["queued", "running"]);
const LOSS_SERIES = [
  ["total", "total"],
  ["classification", "classification"],
  ["bbox_regression", "box regression"],
  ["bbox_ctrness", "centre-ness"],
  ["spread", "embedding spread"],
];
const KIND_NAMES = { detector: "detector", embedding: "embedding" };
// The one figure a version is judged by.
const score = (run) => (run.kind === "embedding" ? run.metrics?.recall_at_1 : run.metrics?.map50);

const notice = $("#page-notice");
function notify(message, { error = false } = {}) {
  notice.textContent = message;
  notice.classList.toggle("error", error);
  notice.hidden = !message;
}

let runs = [];
let selectedId = null; // the version a person clicked; otherwise the newest trained one is shown
let timer = 0;

// A score in [0, 1] as people read it on the page: two decimals, a dash when there is none.
const score2 = (value) => (value === null || value === undefined ? "—" : value.toFixed(2));

function lossChart(run, label) {
  const curve = run.loss_curve || [];
  const series = LOSS_SERIES.filter(([key]) => curve.some((entry) => key in entry)).map(([key, name]) => ({
    name,
    points: curve.map((entry) => [entry.epoch, entry[key]]),
  }));
  const xLabel = run.kind === "embedding" ? "step" : "epoch";
  const xMax = Math.max(run.epochs_total || 1, ...curve.map((entry) => entry.epoch));
  return lineChart(series, { label, xLabel, xMax });
}

function showActive(run) {
  const section = $("#active-run");
  section.hidden = !run;
  for (const button of $("#retrain-buttons").querySelectorAll("button")) button.disabled = Boolean(run);
  if (!run) return;
  const unit = run.kind === "embedding" ? "step" : "epoch";
  $("#run-status").textContent =
    run.state === "queued"
      ? `Version ${run.number} (${KIND_NAMES[run.kind]}) is waiting for the training worker…`
      : `Training version ${run.number} (${KIND_NAMES[run.kind]}): ${unit} ${run.epochs_done} of ${run.epochs_total}` +
        (run.cancel_requested ? ` (stopping after this ${unit})` : "");
  $("#run-progress").value = run.epochs_total ? run.epochs_done / run.epochs_total : 0;
  $("#run-loss").replaceChildren(lossChart(run, `Loss of version ${run.number} by ${unit}`));
  $("#cancel-run").disabled = run.cancel_requested;
  $("#cancel-run").onclick = async () => {
    try {
      showActive(await api(`${orgPath}/training-runs/${run.id}/cancel`, { method: "POST" }));
    } catch (error) {
      notify(`The run could not be cancelled: ${error.message}`, { error: true });
    }
  };
}

function showComparison(run) {
  const section = $("#compare");
  section.hidden = !run;
  if (!run) return;
  if (run.kind === "embedding") return showEmbeddingComparison(run);
  const current = runs.find((other) => other.is_current && other.kind === run.kind);
  // The run's own evaluation holds the then-current model's scores on the same frames.
  const beside = run.metrics.current || null;
  const labels = Object.keys(run.metrics.per_label || {});
  const series = [{ name: `version ${run.number}`, values: labels.map((label) => run.metrics.per_label[label]) }];
  if (beside) series.push({ name: `version ${beside.run}, same frames`, values: labels.map((label) => (beside.per_label || {})[label] ?? null) });
  $("#compare-caption").textContent =
    `Version ${run.number}: mAP@0.5 ${score2(run.metrics.map50)} on ${run.metrics.val_frames} validation frames` +
    (beside ? `, against ${score2(beside.map50)} for version ${beside.run} on the same frames.` : ".") +
    refinerSentence(run.metrics.refiner) +
    (current && current.id !== run.id ? ` Version ${current.number} is in use.` : "");
  $("#compare-chart").replaceChildren(barChart(labels, series, { label: `AP at IoU 0.5 per label, version ${run.number}` }));
  $("#compare-loss").replaceChildren(lossChart(run, `Loss of version ${run.number} by epoch`));
}

// What the version's box refiner would save on the boxes it moves: those the tracker follows into
// a video's frames, and those proposed in stills (see proposals/training/refiner.py).
function refinerSentence(refiner) {
  const followed = refiner?.followed;
  if (!followed) return "";
  const onStills = refiner.on_stills;
  const judged = [];
  if (followed.boxes) judged.push(`the boxes followed into the validation frames would take a person ${followed.seconds_after} s refined, against ${followed.seconds_before} s as followed`);
  if (onStills?.boxes) judged.push(`the boxes proposed in the validation stills would take a person ${onStills.seconds_after} s refined, against ${onStills.seconds_before} s as proposed`);
  if (!judged.length) return " Its box refiner is not used: no validation frame had boxes to judge it by.";
  return ` Its box refiner: ${judged.join("; ")}` + (refiner.kept ? "; it is kept with this version." : "; it is not used.");
}

function showEmbeddingComparison(run) {
  const beside = run.metrics.current || null;
  const series = [{ name: `version ${run.number}`, values: [run.metrics.recall_at_1] }];
  if (beside) series.push({ name: beside.run ? `version ${beside.run}, same crops` : "configured model, same crops", values: [beside.recall_at_1] });
  $("#compare-caption").textContent =
    `Version ${run.number} (embedding): a validation box's nearest confirmed example has its label ${score2(run.metrics.recall_at_1)} of the time ` +
    `(${run.metrics.val_crops} boxes against ${run.metrics.train_crops})` +
    (beside ? `, against ${score2(beside.recall_at_1)} for the embedding in use then.` : ".") +
    (run.is_pending ? " Its index is being rebuilt; it is used once that is done." : "");
  $("#compare-chart").replaceChildren(barChart(["nearest-example label right"], series, { label: `Recall at 1, version ${run.number}` }));
  $("#compare-loss").replaceChildren(lossChart(run, `Loss of version ${run.number} by step`));
}

function versionRow(run) {
  const actions = [];
  if (run.state === "succeeded" && !run.is_current && !run.is_pending) {
    actions.push(
      h("button", {
        type: "button",
        textContent: "Use this version",
        onclick: async (event) => {
          event.stopPropagation();
          try {
            await api(`${orgPath}/training-runs/${run.id}/promote`, { method: "POST" });
            notify(`Version ${run.number} is in use: proposals on frames still to label come from it.`);
            await refresh();
          } catch (error) {
            notify(`Version ${run.number} could not be put into use: ${error.message}`, { error: true });
          }
        },
      }),
    );
  }
  const state = run.is_current ? "in use" : run.is_pending ? "indexing" : run.state;
  const row = h(
    "tr",
    { className: run.id === (selectedId ?? runs.find((r) => r.state === "succeeded")?.id) ? "selected" : "", "data-run": run.number },
    h("td", {}, `v${run.number}`),
    h("td", {}, KIND_NAMES[run.kind] || run.kind),
    h("td", { className: `state ${run.is_current ? "current" : run.state}` }, state),
    h("td", {}, run.trigger === "periodic" ? "schedule" : run.requested_by || "—"),
    h("td", {}, run.train_frames || run.val_frames ? `${run.train_frames} / ${run.val_frames}` : "—"),
    h("td", { title: run.kind === "embedding" ? "recall@1" : "mAP@0.5" }, score2(score(run))),
    h("td", { className: "decision" }, run.error || run.decision || ""),
    h("td", {}, ...actions),
  );
  if (run.state === "succeeded") {
    row.tabIndex = 0;
    row.onclick = () => select(run.id);
    row.onkeydown = (event) => event.key === "Enter" && select(run.id);
  }
  return row;
}

function select(runId) {
  selectedId = runId;
  render();
}

function render() {
  const active = runs.find((run) => ACTIVE.has(run.state)) || null;
  showActive(active);
  const succeeded = runs.filter((run) => run.state === "succeeded");
  const selected = succeeded.find((run) => run.id === selectedId) || succeeded[0] || null;
  showComparison(selected);
  $("#version-rows").replaceChildren(
    ...(runs.length ? runs.map(versionRow) : [h("tr", {}, h("td", { colSpan: 8, className: "hint" }, "No version yet: press Retrain once some frames are complete."))]),
  );
}

async function refresh() {
  clearTimeout(timer);
  runs = (await listAll(runsPath)).sort((a, b) => b.number - a.number); // newest first
  render();
  if (runs.some((run) => ACTIVE.has(run.state) || run.is_pending)) timer = setTimeout(() => refresh().catch(() => {}), POLL_MS);
}

async function loadSettings() {
  const form = $("#learning-settings");
  const settings = await api(`${orgPath}/projects/${projectId}/learning`);
  form.retrain_every_boxes.value = settings.retrain_every_boxes;
  form.queue_order.value = settings.queue_order;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const result = form.querySelector(".form-result");
    try {
      await api(`${orgPath}/projects/${projectId}/learning`, {
        method: "PATCH",
        body: { retrain_every_boxes: Number(form.retrain_every_boxes.value), queue_order: form.queue_order.value },
      });
      result.textContent = "Saved.";
    } catch (error) {
      result.textContent = `Not saved: ${error.message}`;
    }
  };
}

for (const button of $("#retrain-buttons").querySelectorAll("button")) {
  button.onclick = async () => {
    try {
      const run = await api(runsPath, { method: "POST", body: { kind: button.dataset.kind } });
      notify(`Version ${run.number} (${KIND_NAMES[run.kind]}) is ${run.state === "queued" ? "queued" : "already training"}.`);
      await refresh();
    } catch (error) {
      notify(`Training could not start: ${error.message}`, { error: true });
    }
  };
}

try {
  const project = await api(`${orgPath}/projects/${projectId}`);
  $("#project-link").textContent = project.name;
  document.title = `Models · ${project.name} · Labeller`;
  await Promise.all([refresh(), loadSettings()]);
  $("#retrain-buttons").hidden = false;
} catch (error) {
  notify(
    error.status === 403 ? "Only the organisation's admins manage models." : `The models could not be loaded: ${error.message}`,
    { error: true },
  );
}
root.dataset.ready = "true";
