// The taxonomy picker: find a label by any part of its dotted name, pick it with Enter.

const MAX_RESULTS = 50;

/**
 * Labels matching ``query``, best first; deprecated labels never match.
 *
 * A label matches when the query is a prefix of one of its segments or a substring of
 * its name ("des" finds food.dish.dessert). Ranking: its hotkey typed alone, then a
 * prefix of the leaf segment, then a prefix of another segment or of the dotted name,
 * then a substring of the leaf, then anywhere; ties go to the shorter leaf, then by name.
 * Spaces in the query stand for dots ("dish des" finds food.dish.dessert).
 */
export function searchLabels(labels, query, limit = MAX_RESULTS) {
  const term = query.trim().toLowerCase().replace(/\s+/g, ".");
  const live = labels.filter((label) => !label.deprecated);
  if (!term) return [...live].sort((a, b) => a.name.localeCompare(b.name)).slice(0, limit);
  const ranked = [];
  for (const label of live) {
    const rank = label.hotkey && label.hotkey.toLowerCase() === term ? -1 : matchRank(label.name, term);
    if (rank !== null) ranked.push({ label, rank, leafLength: leafOf(label.name).length });
  }
  ranked.sort((a, b) => a.rank - b.rank || a.leafLength - b.leafLength || a.label.name.localeCompare(b.label.name));
  return ranked.slice(0, limit).map((entry) => entry.label);
}

function matchRank(name, term) {
  const segments = name.split(".");
  const leaf = segments[segments.length - 1];
  if (leaf.startsWith(term)) return 0;
  if (name.startsWith(term) || segments.some((segment) => segment.startsWith(term))) return 1;
  if (leaf.includes(term)) return 2;
  if (name.includes(term)) return 3;
  return null;
}

function leafOf(name) {
  return name.slice(name.lastIndexOf(".") + 1);
}

/** The picker dialog. One instance; ``open`` returns the picked label id, or null when closed. */
export class LabelPicker {
  #options = [];
  #active = -1;
  #suggestions = [];
  #resolve = null;

  constructor({ dialog, labels }) {
    this.dialog = dialog;
    this.labels = labels; // () -> every label of the project
    this.input = dialog.querySelector("input");
    this.list = dialog.querySelector("[role=listbox]");
    this.title = dialog.querySelector("h2");
    this.note = dialog.querySelector(".picker-note");
    this.input.addEventListener("input", () => this.#render(this.input.value.trim() ? 0 : null));
    this.input.addEventListener("keydown", (event) => this.#key(event));
    this.list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.#finish(Number(option.dataset.labelId));
    });
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.#finish(null);
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  /**
   * ``suggestions``: [{label_id, score}] shown first while the query is empty; more may
   * arrive later through ``suggestionsLater`` (a promise), e.g. from the model.
   */
  open({ title, suggestions = [], suggestionsLater = null }) {
    this.title.textContent = title;
    this.input.value = "";
    this.note.textContent = "";
    this.#suggestions = this.#known(suggestions);
    this.#render(null);
    this.dialog.showModal();
    this.input.focus();
    suggestionsLater?.then((answer) => {
      if (!this.isOpen || !answer) return;
      this.#suggestions = this.#known(answer.suggestions);
      this.note.textContent = answer.note || "";
      if (!this.input.value.trim()) this.#render(null);
    });
    return new Promise((resolve) => (this.#resolve = resolve));
  }

  #known(suggestions) {
    const byId = new Map(this.labels().map((label) => [label.id, label]));
    return (suggestions || [])
      .map((suggestion) => ({ label: byId.get(suggestion.label_id), score: suggestion.score }))
      .filter((suggestion) => suggestion.label && !suggestion.label.deprecated);
  }

  /** ``active``: the option to highlight; null picks the top suggestion, if any. */
  #render(active) {
    const query = this.input.value;
    const suggested = query.trim() ? [] : this.#suggestions;
    const suggestedIds = new Set(suggested.map((suggestion) => suggestion.label.id));
    const found = searchLabels(this.labels(), query).filter((label) => !suggestedIds.has(label.id));
    this.#options = [...suggested, ...found.map((label) => ({ label, score: null }))];
    this.#active = active ?? (suggested.length ? 0 : -1);
    this.list.replaceChildren(
      ...this.#options.map((option, index) => {
        const item = document.createElement("li");
        item.id = `picker-option-${index}`;
        item.setAttribute("role", "option");
        item.dataset.labelId = option.label.id;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = option.label.color;
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = option.label.name;
        item.append(swatch, name);
        if (option.score !== null) item.append(badge(`suggested ${Math.round(option.score * 100)}%`));
        if (option.label.hotkey) item.append(badge(`key ${option.label.hotkey}`));
        return item;
      }),
    );
    if (!this.#options.length) {
      const empty = document.createElement("li");
      empty.textContent = "No label matches.";
      empty.className = "empty";
      this.list.append(empty);
    }
    this.#highlight();
  }

  #highlight() {
    this.list.querySelectorAll("[role=option]").forEach((item, index) => {
      item.setAttribute("aria-selected", String(index === this.#active));
      if (index === this.#active) item.scrollIntoView({ block: "nearest" });
    });
    if (this.#active >= 0) this.input.setAttribute("aria-activedescendant", `picker-option-${this.#active}`);
    else this.input.removeAttribute("aria-activedescendant");
  }

  #key(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.#active = Math.max(0, Math.min(this.#options.length - 1, this.#active + step));
      this.#highlight();
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (this.#active >= 0) this.#finish(this.#options[this.#active].label.id);
    }
  }

  #finish(labelId) {
    if (this.dialog.open) this.dialog.close();
    const resolve = this.#resolve;
    this.#resolve = null;
    resolve?.(labelId);
  }
}

function badge(text) {
  const element = document.createElement("span");
  element.className = "badge";
  element.textContent = text;
  return element;
}
