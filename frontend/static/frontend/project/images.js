// Still images (several files, or one zip) and labelled datasets (COCO, VOC, YOLO zips).
// Several files are added in the request. A zip is imported by a bulk worker: the request
// answers 202 with the import, whose status (imports/<id>) is polled until done or failed.

import { api } from "../api.js";
import { h } from "./dom.js";

const ZIP = /\.zip$/i;

/** The image form: adds the chosen images, or the images inside one zip, as frames. */
export function bindImageUpload({ form, orgPath, projectId }) {
  const input = form.querySelector("input[type=file]");
  const result = form.querySelector(".form-result");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const files = [...input.files];
    const zips = files.filter((file) => ZIP.test(file.name));
    if (zips.length && files.length > 1) {
      showResult(result, "Send one zip on its own, or images without a zip.", { error: true });
      return;
    }
    const body = new FormData();
    if (zips.length) body.append("archive", zips[0]);
    else for (const file of files) body.append("files", file);
    submit(form, result, `Sending ${files.length === 1 ? files[0].name : `${files.length} files`}…`, async () => {
      const answer = await api(`${orgPath}/projects/${projectId}/images/`, { method: "POST", body });
      input.value = "";
      if (Array.isArray(answer)) {
        showResult(result, `Added ${answer.length} image${answer.length === 1 ? "" : "s"} to the project.`);
        return;
      }
      const job = await followImport(orgPath, answer, result);
      showResult(result, `Added ${plural(job.frames_created, "image")} to the project${skippedText(job)}.`);
    });
  });
}

/** The dataset form: imports images and their boxes, and reports what it could not use. */
export function bindDatasetImport({ form, orgPath, projectId, onImported }) {
  const result = form.querySelector(".form-result");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = new FormData(form); // "format" and "archive", as the API names them
    submit(form, result, "Sending…", async () => {
      const queued = await api(`${orgPath}/projects/${projectId}/imports/`, { method: "POST", body });
      form.querySelector("input[type=file]").value = "";
      const job = await followImport(orgPath, queued, result);
      showReport(result, job);
      onImported(job);
    });
  });
}

const POLL_MS = 1000;

/** Poll an import's status, showing its progress, until it is done; a failed one throws its reason. */
async function followImport(orgPath, job, result) {
  while (job.state === "queued" || job.state === "running") {
    const where = job.state === "queued" ? "Waiting for a worker…" : `Importing… ${job.progress}%`;
    const counted = job.images_total ? ` (${job.images_done} of ${job.images_total} images)` : "";
    result.replaceChildren(h("p", {}, where + counted), h("progress", { max: 100, value: job.progress }));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = await api(`${orgPath}/imports/${job.id}`);
  }
  if (job.state === "failed") throw new Error(job.error || "The import failed.");
  return job;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function skippedText(job) {
  return job.frames_skipped ? `; ${plural(job.frames_skipped, "image")} already there, skipped` : "";
}

async function submit(form, result, pendingText, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showResult(result, pendingText);
  try {
    await work();
  } catch (error) {
    showResult(result, error.message, { error: true });
  } finally {
    button.disabled = false;
  }
}

function showResult(result, message, { error = false } = {}) {
  result.replaceChildren(h("p", { className: error ? "error" : "" }, message));
}

function showReport(result, job) {
  const summary =
    `Imported ${plural(job.frames_created, "image")} and ${job.boxes_created} box${job.boxes_created === 1 ? "" : "es"}; ` +
    `${plural(job.labels_created, "new label")}${skippedText(job)}.`;
  const problems = [problemList("Not imported", job.errors, "error"), problemList("Warnings", job.warnings, "warning")];
  result.replaceChildren(h("p", {}, summary), ...problems.filter(Boolean));
}

function problemList(title, problems, className) {
  if (!problems?.length) return null;
  const list = h("ul", { className: `problems ${className}` });
  for (const problem of problems) list.append(h("li", {}, h("code", {}, problem.record), ` ${problem.message}`));
  return h("details", { open: problems.length <= 10 }, h("summary", {}, `${title} (${problems.length})`), list);
}
