// Still images (several files, or one zip) and labelled datasets (COCO, VOC, YOLO zips).
// Both are one multipart request; the server checks every file before it keeps any.

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
      const frames = await api(`${orgPath}/projects/${projectId}/images/`, { method: "POST", body });
      input.value = "";
      showResult(result, `Added ${frames.length} image${frames.length === 1 ? "" : "s"} to the project.`);
    });
  });
}

/** The dataset form: imports images and their boxes, and reports what it could not use. */
export function bindDatasetImport({ form, orgPath, projectId, onImported }) {
  const result = form.querySelector(".form-result");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = new FormData(form); // "format" and "archive", as the API names them
    submit(form, result, "Importing…", async () => {
      const report = await api(`${orgPath}/projects/${projectId}/imports/`, { method: "POST", body });
      form.querySelector("input[type=file]").value = "";
      showReport(result, report);
      onImported(report);
    });
  });
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

function showReport(result, report) {
  const summary =
    `Imported ${report.images} image${report.images === 1 ? "" : "s"} and ${report.boxes} box${report.boxes === 1 ? "" : "es"}; ` +
    `${report.labels_created} new label${report.labels_created === 1 ? "" : "s"}.`;
  const problems = [problemList("Not imported", report.errors, "error"), problemList("Warnings", report.warnings, "warning")];
  result.replaceChildren(h("p", {}, summary), ...problems.filter(Boolean));
}

function problemList(title, problems, className) {
  if (!problems?.length) return null;
  const list = h("ul", { className: `problems ${className}` });
  for (const problem of problems) list.append(h("li", {}, h("code", {}, problem.record), ` ${problem.message}`));
  return h("details", { open: problems.length <= 10 }, h("summary", {}, `${title} (${problems.length})`), list);
}
