// Someone else saved the box first: show both versions and let the annotator choose.

const ACTIONS = { update: "change", confirm: "accept", reject: "reject", delete: "delete" };

export class ConflictDialog {
  constructor({ dialog, labelName }) {
    this.dialog = dialog;
    this.labelName = labelName; // label id -> name
    this.theirs = dialog.querySelector(".theirs");
    this.mine = dialog.querySelector(".mine");
    // The choice matters (one version is discarded), so Esc does not decide it.
    dialog.addEventListener("cancel", (event) => event.preventDefault());
  }

  /** Resolves "theirs" (drop my change, show theirs) or "mine" (save mine over the current version). */
  ask(op, current, myBox) {
    this.theirs.textContent = describeAnnotation(current, this.labelName);
    this.mine.textContent = describeMine(op, myBox, this.labelName);
    this.dialog.showModal();
    return new Promise((resolve) => {
      const choose = (event) => {
        const choice = event.target.closest("button[value]")?.value;
        if (!choice) return;
        this.dialog.removeEventListener("click", choose);
        this.dialog.close();
        resolve(choice);
      };
      this.dialog.addEventListener("click", choose);
    });
  }
}

function describeAnnotation(annotation, labelName) {
  const label = annotation.label_id === null ? "no label" : labelName(annotation.label_id);
  const by = annotation.author ? ` by ${annotation.author}` : "";
  return `${label}, ${annotation.status}, box ${formatBox(annotation.box)} (version ${annotation.version}${by})`;
}

function describeMine(op, myBox, labelName) {
  const parts = [ACTIONS[op.type] || op.type];
  if (op.labelId !== undefined && op.labelId !== null) parts.push(`label ${labelName(op.labelId)}`);
  if (op.box) parts.push(`box ${formatBox(op.box)}`);
  else if (myBox) parts.push(`box ${formatBox(myBox.box)}`);
  return parts.join(", ");
}

function formatBox(box) {
  return `[${box.map((value) => Math.round(value)).join(", ")}]`;
}
