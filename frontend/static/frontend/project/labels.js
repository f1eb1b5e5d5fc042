// The project's taxonomy: every label with its colour and hotkey; admins create labels
// (the server's objections shown next to the field at fault), deprecate them, and open a
// label's editor to rename, move, recolour or merge it (label-editor.js). Boxes follow
// their label through a rename or a merge; the server does that in one transaction.

import { api, listAll } from "../api.js";
import { h } from "./dom.js";
import { labelEditorRow, leafOf, taxonomyFileControls } from "./label-editor.js";

export class Taxonomy {
  labels = [];
  #editing = null; // id of the label whose editor is open

  /** status: where the outcome of a change, or a failure to load, is announced. */
  constructor({ table, form, status, orgPath, projectId, canEdit }) {
    Object.assign(this, { table, form, status, orgPath, canEdit });
    this.listPath = `${orgPath}/projects/${projectId}/labels/`;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#create();
    });
    if (canEdit) {
      const say = (message, options) => this.#say(message, options);
      form.after(taxonomyFileControls({ orgPath, projectId, onImported: () => this.reload(), say }));
    }
  }

  async reload() {
    try {
      this.labels = await listAll(this.listPath);
    } catch (error) {
      this.#say(`The labels could not be loaded: ${error.message}`, { error: true });
      return;
    }
    this.#render();
    this.table.dispatchEvent(new CustomEvent("labels-loaded"));
  }

  #render() {
    const body = this.table.tBodies[0];
    if (!this.labels.length) {
      body.replaceChildren(h("tr", {}, h("td", { colSpan: 5, className: "empty" }, "No labels yet.")));
      return;
    }
    // Sorted by the dotted name, every label sits right under its parent.
    const sorted = [...this.labels].sort((a, b) => a.name.localeCompare(b.name));
    body.replaceChildren(...sorted.flatMap((label) => (label.id === this.#editing ? [this.#row(label), this.#editor(label)] : [this.#row(label)])));
  }

  #editor(label) {
    const done = async (message, options) => {
      this.#editing = null;
      this.#say(message, options);
      await this.reload();
    };
    return labelEditorRow({ label, labels: this.labels, orgPath: this.orgPath, columns: 5, done });
  }

  #row(label) {
    const leaf = leafOf(label);
    const name = h("td", { className: "label-name" }, h("span", { className: "depth", style: `--depth: ${label.depth}` }), h("span", { title: label.name }, leaf));
    const swatch = h("span", { className: "swatch", style: `background: ${label.color}`, "aria-hidden": "true" });
    const row = h(
      "tr",
      { className: label.deprecated ? "deprecated" : "", "data-label": label.name },
      name,
      h("td", {}, swatch, label.color),
      h("td", {}, label.hotkey ? h("kbd", {}, label.hotkey) : ""),
      h("td", {}, label.deprecated ? "Deprecated" : "In use"),
    );
    if (this.canEdit) {
      const verb = label.deprecated ? "Restore" : "Deprecate";
      const button = h("button", { type: "button", className: "secondary", "aria-label": `${verb} ${label.name}` }, verb);
      button.addEventListener("click", () => this.#setDeprecated(label, !label.deprecated, button));
      const open = this.#editing === label.id;
      const edit = h("button", { type: "button", className: "secondary", "aria-label": `Edit ${label.name}`, "aria-expanded": String(open) }, open ? "Close" : "Edit");
      edit.addEventListener("click", () => {
        this.#editing = open ? null : label.id;
        this.#render();
      });
      row.append(h("td", {}, h("div", { className: "label-actions" }, edit, button)));
    }
    return row;
  }

  async #setDeprecated(label, deprecated, button) {
    button.disabled = true;
    try {
      await api(`${this.orgPath}/labels/${label.id}`, { method: "PATCH", body: { version: label.version, deprecated } });
      this.#say(deprecated ? `Deprecated ${label.name}: it is no longer offered for new boxes.` : `${label.name} is in use again.`);
    } catch (error) {
      const stale = error.status === 409;
      this.#say(stale ? `Someone changed ${label.name} meanwhile; here is the list as it is now.` : error.message, { error: true });
    }
    await this.reload();
  }

  async #create() {
    this.#clearFieldErrors();
    const data = Object.fromEntries(new FormData(this.form));
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const label = await api(this.listPath, { method: "POST", body: data });
      this.form.elements.name.value = "";
      this.form.elements.hotkey.value = "";
      this.#say(`Created ${label.name}.`);
      await this.reload();
    } catch (error) {
      this.#showFieldErrors(error);
    } finally {
      button.disabled = false;
    }
  }

  /** A 400 names the fields at fault: as a serializer's {field: [...]} or a service's {detail, errors}. */
  #showFieldErrors(error) {
    const body = error.body || {};
    const perField = body.errors || (body.detail ? {} : body);
    let shown = false;
    for (const [field, messages] of Object.entries(perField)) {
      const input = this.form.elements[field];
      const slot = this.form.querySelector(`#label-${field}-error`);
      if (!input || !slot) continue;
      input.setAttribute("aria-invalid", "true");
      slot.textContent = [].concat(messages).join(" ");
      shown = true;
    }
    if (!shown) this.#say(error.message, { error: true });
    else this.form.querySelector("[aria-invalid=true]").focus();
  }

  #clearFieldErrors() {
    for (const input of this.form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    for (const slot of this.form.querySelectorAll(".field-error")) slot.textContent = "";
    this.status.replaceChildren();
  }

  #say(message, { error = false } = {}) {
    this.status.replaceChildren(h("p", { className: error ? "error" : "" }, message));
  }
}
