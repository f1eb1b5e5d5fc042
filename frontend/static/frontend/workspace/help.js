// The help overlay, written from the same table the key handler uses.

import { MOUSE_GESTURES, SHORTCUTS, displayKeys, isReservedKey } from "./keys.js";

export function renderHelp(container, labels) {
  const groups = new Map();
  for (const shortcut of SHORTCUTS) {
    if (!groups.has(shortcut.group)) groups.set(shortcut.group, []);
    groups.get(shortcut.group).push([displayKeys(shortcut), shortcut.help]);
  }
  groups.set("Mouse", MOUSE_GESTURES.map((gesture) => [gesture.display, gesture.help]));
  const hotkeys = labels.filter((label) => label.hotkey && !label.deprecated);
  if (hotkeys.length) {
    groups.set(
      "Label hotkeys",
      hotkeys.map((label) => [
        label.hotkey,
        isReservedKey(label.hotkey) ? `${label.name} (taken by a workspace shortcut: use / instead)` : `Give the selected box ${label.name}`,
      ]),
    );
  }
  container.replaceChildren(
    ...[...groups].map(([group, rows]) => {
      const section = document.createElement("section");
      const heading = document.createElement("h3");
      heading.textContent = group;
      const list = document.createElement("dl");
      for (const [keys, help] of rows) {
        const term = document.createElement("dt");
        const key = document.createElement("kbd");
        key.textContent = keys;
        term.append(key);
        const description = document.createElement("dd");
        description.textContent = help;
        list.append(term, description);
      }
      section.append(heading, list);
      return section;
    }),
  );
}
