// One label's editor (admins): rename, move under another parent, colour and hotkey, merge
// into another label (its sub-labels along), delete. Each change is one API call; the server refuses what cannot
// be (a taken name, a label in use, a stale version) and its words are shown as they are.

import { api } from "../api.js";
import { h } from "./dom.js";

export function leafOf(label) {
  return label.name.slice(label.parent_name ? label.parent_name.length + 1 : 0);
}

function inSubtree(label, root) {
  return label.id === root.id || label.name.startsWith(`${root.name}.`);
}

/** What merging ``label`` into ``target`` does to its sub-labels, as the server will do it:
 * each ``label.X`` goes under the target as ``target.X``, merged into one of that name if
 * there is one. "" when ``label`` has none. */
export function subLabelPlan(label, target, labels) {
  const names = new Set(labels.map((other) => other.name));
  const children = labels.filter((other) => other.name.startsWith(`${label.name}.`));
  if (!children.length) return "";
  const merged = children.filter((child) => names.has(target.name + child.name.slice(label.name.length))).length;
  const said = [];
  if (children.length > merged) said.push(`moves ${children.length - merged} sub-label${children.length - merged === 1 ? "" : "s"} under ${target.name}`);
  if (merged) said.push(`merges ${merged} into ${target.name}'s sub-label${merged === 1 ? "" : "s"} of the same name`);
  return said.join(" and ");
}

/** A table row spanning the columns, holding the editor of ``label``. ``done(message, {error})``
 * reports the outcome and reloads the table. */
export function labelEditorRow({ label, labels, orgPath, columns, done }) {
  const path = `${orgPath}/labels/${label.id}`;
  const others = labels.filter((other) => !inSubtree(other, label)).sort((a, b) => a.name.localeCompare(b.name));

  const leaf = h("input", { value: leafOf(label), required: true, autocomplete: "off", "aria-label": `New name of ${label.name}` });
  const parent = h("select", { "aria-label": `Parent of ${label.name}` }, h("option", { value: "" }, "(top level)"));
  for (const other of others) parent.append(h("option", { value: other.id, selected: other.name === label.parent_name }, other.name));
  const color = h("input", { type: "color", value: label.color, "aria-label": `Colour of ${label.name}` });
  const hotkey = h("input", { value: label.hotkey, maxLength: 1, size: 2, autocomplete: "off", "aria-label": `Hotkey of ${label.name}` });
  const save = h("button", { type: "submit" }, "Save");
  const form = h(
    "form",
    { className: "label-edit-form" },
    h("label", {}, "Name ", leaf),
    h("label", {}, "Under ", parent),
    h("label", {}, "Colour ", color),
    h("label", {}, "Hotkey ", hotkey),
    save,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const message = await saveChanges();
      done(message || `Nothing changed in ${label.name}.`);
    } catch (error) {
      done(staleOr(error), { error: true });
    }
  });

  async function saveChanges() {
    let current = label;
    const parentLabel = others.find((other) => String(other.id) === parent.value) || null;
    const parentName = parentLabel ? parentLabel.name : null;
    const said = [];
    if (leaf.value.trim() !== leafOf(label)) {
      const name = parentName ? `${parentName}.${leaf.value.trim()}` : leaf.value.trim();
      current = await api(`${path}/rename`, { method: "POST", body: { version: current.version, name } });
      said.push(`Renamed ${label.name} to ${current.name}; its boxes follow.`);
    } else if (parentName !== label.parent_name) {
      current = await api(`${path}/move`, { method: "POST", body: { version: current.version, parent_id: parentLabel ? parentLabel.id : null } });
      said.push(`Moved ${label.name} to ${current.name}; its boxes follow.`);
    }
    const changes = {};
    if (color.value.toLowerCase() !== label.color.toLowerCase()) changes.color = color.value;
    if (hotkey.value !== label.hotkey) changes.hotkey = hotkey.value;
    if (Object.keys(changes).length) {
      current = await api(path, { method: "PATCH", body: { version: current.version, ...changes } });
      said.push(`Saved the colour and hotkey of ${current.name}.`);
    }
    return said.join(" ");
  }

  const into = h("select", { "aria-label": `Merge ${label.name} into` }, h("option", { value: "" }, "Merge into…"));
  for (const other of others.filter((other) => !other.deprecated)) into.append(h("option", { value: other.id }, other.name));
  const merge = h("button", { type: "button", className: "danger" }, "Merge");
  const preview = h("span", { className: "merge-preview", "aria-live": "polite" });
  const chosen = () => others.find((other) => String(other.id) === into.value);
  into.addEventListener("change", () => {
    const target = chosen();
    preview.textContent = target ? subLabelPlan(label, target, labels) : "";
  });
  merge.addEventListener("click", async () => {
    const target = chosen();
    if (!target) return done(`Choose the label that takes over the boxes of ${label.name}.`, { error: true });
    const plan = subLabelPlan(label, target, labels);
    if (!window.confirm(`Merge ${label.name} into ${target.name}? Every box of ${label.name} becomes ${target.name}, and ${label.name} is removed.${plan ? ` It ${plan}.` : ""}`)) return;
    merge.disabled = true;
    try {
      const result = await api(`${path}/merge`, { method: "POST", body: { version: label.version, into_id: target.id } });
      const count = (n) => `${n} sub-label${n === 1 ? "" : "s"}`;
      const subs = [
        result.moved_labels.length ? `${count(result.moved_labels.length)} moved` : "",
        result.merged_labels.length ? `${count(result.merged_labels.length)} merged` : "",
      ].filter(Boolean);
      done(`Merged ${label.name} into ${result.into.name}: ${result.moved_annotations} boxes moved${subs.length ? `; ${subs.join(", ")}` : ""}.`);
    } catch (error) {
      done(staleOr(error), { error: true });
    }
  });
  const remove = h("button", { type: "button", className: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete ${label.name}?`)) return;
    try {
      await api(path, { method: "DELETE" });
      done(`Deleted ${label.name}.`);
    } catch (error) {
      done(error.message, { error: true });
    }
  });

  const tools = h("div", { className: "label-edit-tools" }, into, merge, remove, preview);
  return h("tr", { className: "label-editor" }, h("td", { colSpan: columns }, form, tools));

  function staleOr(error) {
    return error.status === 409 && error.body?.code === "stale_version"
      ? `Someone changed ${label.name} meanwhile; here is the list as it is now.`
      : error.message;
  }
}

/** Download the taxonomy as JSON, and read one back (admins). */
export function taxonomyFileControls({ orgPath, projectId, onImported, say }) {
  const listPath = `${orgPath}/projects/${projectId}/labels`;
  const download = h("a", { className: "button secondary", href: `/api/v1/${listPath}/export?format=json`, download: `taxonomy-project-${projectId}.json` }, "Download the taxonomy (JSON)");
  const input = h("input", { type: "file", accept: ".json,application/json", id: "taxonomy-file" });
  input.addEventListener("change", async () => {
    const [file] = input.files;
    if (!file) return;
    try {
      const document = JSON.parse(await file.text());
      const result = await api(`${listPath}/import`, { method: "POST", body: document });
      say(`Imported ${file.name}: ${result.created.length} created, ${result.updated.length} changed, ${result.unchanged} as they were.`);
      await onImported();
    } catch (error) {
      say(error instanceof SyntaxError ? `${file.name} is not JSON: ${error.message}` : error.message, { error: true });
    } finally {
      input.value = "";
    }
  });
  return h("div", { className: "taxonomy-file" }, download, h("label", { htmlFor: "taxonomy-file" }, "Read a taxonomy file (JSON)"), input);
}
