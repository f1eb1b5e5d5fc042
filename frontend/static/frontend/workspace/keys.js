// The one shortcut table: the key handler dispatches from it and the help overlay lists it.

const ARROWS = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"];

export const SHORTCUTS = [
  { group: "Frames", action: "nextFrame", keys: ["N"], help: "Open the next frame of your queue" },
  { group: "Frames", action: "completeFrame", keys: ["Space", "Enter"], help: "Mark the frame complete and open the next one" },
  { group: "Frames", action: "skipFrame", keys: ["S"], help: "Skip the frame: give it back to the queue and open the next one" },
  // Listed for the help overlay; the arrow keys are bound once, under "nudge", which steps through the shot when nothing is selected.
  { group: "Frames", action: "nudge", keys: [], display: "← →", help: "Nothing selected: previous / next frame of the shot" },
  { group: "Proposals", action: "accept", keys: ["A"], help: "Accept the selected proposal" },
  { group: "Proposals", action: "acceptAbove", keys: ["Shift+A"], help: "Accept every proposal scoring at or above the threshold" },
  { group: "Proposals", action: "reject", keys: ["R", "Delete", "Backspace"], help: "Reject the selected proposal, or delete the selected box" },
  { group: "Labels", action: "suggestion1", keys: ["1"], help: "Give the selected box its 1st suggested label" },
  { group: "Labels", action: "suggestion2", keys: ["2"], help: "… its 2nd suggested label" },
  { group: "Labels", action: "suggestion3", keys: ["3"], help: "… its 3rd suggested label" },
  { group: "Labels", action: "openPicker", keys: ["/"], help: "Find a label by any part of its dotted name (Enter picks, Esc closes)" },
  { group: "Selection", action: "selectNext", keys: ["Tab"], help: "Select the next box" },
  { group: "Selection", action: "selectPrevious", keys: ["Shift+Tab"], help: "Select the previous box" },
  { group: "Selection", action: "deselect", keys: ["Escape"], help: "Deselect; cancel a box being drawn" },
  { group: "Selection", action: "nudge", keys: ARROWS, display: "Arrows", help: "Move the selected box 1 px" },
  { group: "Selection", action: "nudgeFar", keys: ARROWS.map((key) => `Shift+${key}`), display: "Shift + arrows", help: "Move the selected box 10 px; nothing selected: pan the view" },
  { group: "Selection", action: "resize", keys: ARROWS.map((key) => `Alt+${key}`), display: "Alt + arrows", help: "Resize the selected box 1 px (→ ↓ grow, ← ↑ shrink)" },
  { group: "Selection", action: "resizeFar", keys: ARROWS.map((key) => `Alt+Shift+${key}`), display: "Alt + Shift + arrows", help: "Resize the selected box 10 px" },
  { group: "Edit", action: "undo", keys: ["Ctrl+Z"], help: "Undo" },
  { group: "Edit", action: "redo", keys: ["Ctrl+Shift+Z", "Ctrl+Y"], help: "Redo" },
  { group: "View", action: "zoomIn", keys: ["+", "="], help: "Zoom in" },
  { group: "View", action: "zoomOut", keys: ["-"], help: "Zoom out" },
  { group: "View", action: "zoomFit", keys: ["0"], help: "Fit the frame to the window" },
  { group: "View", action: "focusPanel", keys: ["F6"], help: "Move the focus between the frame and the side panel" },
  { group: "View", action: "help", keys: ["?"], help: "Show or hide this list" },
];

export const MOUSE_GESTURES = [
  { display: "Drag on the frame", help: "Draw a box (or click two opposite corners)" },
  { display: "Click a box", help: "Select it; drag it to move, drag a handle to resize" },
  { display: "Wheel", help: "Zoom around the pointer" },
  { display: "Middle / right drag, Space + drag", help: "Pan" },
];

const NAMED_KEYS = { Space: " ", Delete: "Delete", Backspace: "Backspace", Enter: "Enter", Escape: "Escape", Tab: "Tab" };

function parseCombo(combo) {
  const parts = combo === "+" ? ["+"] : combo.split("+").filter(Boolean);
  const key = parts.pop();
  return {
    key: NAMED_KEYS[key] ?? (key.length === 1 ? key.toLowerCase() : key),
    ctrl: parts.includes("Ctrl"),
    shift: parts.includes("Shift"),
    alt: parts.includes("Alt"),
  };
}

// Symbols such as ? + / need Shift on many layouts, so Shift is not part of their identity.
function isSymbol(key) {
  return key.length === 1 && !/[a-z0-9 ]/.test(key);
}

const BINDINGS = SHORTCUTS.flatMap((shortcut) =>
  shortcut.keys.map((combo) => ({ action: shortcut.action, ...parseCombo(combo) })),
);

/** The action bound to a keydown event, or null. */
export function actionFor(event) {
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const ctrl = event.ctrlKey || event.metaKey;
  const binding = BINDINGS.find(
    (candidate) =>
      candidate.key === key &&
      candidate.ctrl === ctrl &&
      candidate.alt === event.altKey &&
      (isSymbol(key) || candidate.shift === event.shiftKey),
  );
  return binding ? binding.action : null;
}

/** Keys a label hotkey may not take because a workspace shortcut already uses them. */
export function isReservedKey(key) {
  return BINDINGS.some((binding) => binding.key === key.toLowerCase() && !binding.ctrl && !binding.alt);
}

export function displayKeys(shortcut) {
  return shortcut.display ?? shortcut.keys.join(" / ");
}
