// A little help for building markup: h("li", {className: "row", "aria-label": "…"}, "text", child).

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    // Attributes with a dash (aria-*, data-*) and role have no matching DOM property.
    if (name.includes("-") || name === "role") element.setAttribute(name, value);
    else element[name] = value;
  }
  element.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}
