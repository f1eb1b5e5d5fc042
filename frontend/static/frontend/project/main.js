// The project page: what the project holds (videos, images, labels) and, for admins, the
// ways to add to it. The role only decides what is shown; the API checks every write.

import { api } from "../api.js";
import { ExportPanel } from "./export.js";
import { bindDatasetImport, bindImageUpload } from "./images.js";
import { Taxonomy } from "./labels.js";
import { showPolicy } from "./policy.js";
import { ProgressPanel } from "./progress.js";
import { VideoUploader } from "./video-upload.js";
import { VideoList } from "./videos.js";

const $ = (selector) => document.querySelector(selector);
const root = $("#project-page");
const projectId = Number(root.dataset.projectId);
const orgPath = `orgs/${root.dataset.org}`;

const notice = $("#page-notice");
function notify(message, { error = false } = {}) {
  notice.textContent = message;
  notice.classList.toggle("error", error);
  notice.hidden = !message;
}

async function loadProject() {
  try {
    return await Promise.all([api(`${orgPath}/projects/${projectId}`), api(`${orgPath}/`)]);
  } catch (error) {
    $("#project-name").textContent = "Project not available";
    const missing = error.status === 404 || error.status === 403;
    notify(missing ? "This project does not exist, or you are not a member of its organisation." : `The project could not be loaded: ${error.message}`, {
      error: true,
    });
    return [null, null];
  }
}

const [project, organization] = await loadProject();
if (project) {
  document.title = `${project.name} · Labeller`;
  $("#project-name").textContent = project.name;
  $("#project-description").textContent = project.description;
  $("#organization-name").textContent = organization.name;
  const canEdit = organization.role === "admin";
  for (const element of root.querySelectorAll("[data-after-load]")) element.hidden = false;
  for (const element of root.querySelectorAll("[data-admin-only]")) element.hidden = !canEdit;

  const videos = new VideoList({ element: $("#video-list"), orgPath, projectId, canEdit, notify });
  const taxonomy = new Taxonomy({ table: $("#label-table"), form: $("#label-create"), status: $("#label-status"), orgPath, projectId, canEdit });
  if (canEdit) {
    new VideoUploader({ input: $("#video-files"), list: $("#upload-list"), orgPath, projectId, onUploaded: () => videos.refresh() });
    bindImageUpload({ form: $("#image-upload"), orgPath, projectId });
    bindDatasetImport({ form: $("#dataset-import"), orgPath, projectId, onImported: () => taxonomy.reload() });
    showPolicy({ element: $("#proposal-policy"), orgPath, projectId }).catch((error) => {
      $("#proposal-policy").textContent = `The proposal policy could not be loaded: ${error.message}`;
    });
    new ExportPanel({ form: $("#export-form"), list: $("#export-list"), orgPath, projectId }).load().catch((error) => {
      $("#export-list").textContent = `The exports could not be loaded: ${error.message}`;
    });
  }
  const progress = new ProgressPanel({ element: $("#progress-panel"), orgPath, projectId });
  const showProgress = () => progress.refresh().catch((error) => ($("#progress-panel").textContent = `The progress could not be loaded: ${error.message}`));
  $("#label-table").addEventListener("labels-loaded", showProgress); // renames and merges move the counts
  await Promise.all([videos.refresh(), taxonomy.reload()]);
  root.dataset.ready = "true";
}
