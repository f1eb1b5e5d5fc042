// Two small SVG charts, drawn with the browser's own SVG (no library, no build step):
// grouped horizontal bars for scores in [0, 1], and lines for curves such as a loss by epoch.

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444"];

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function legend(names, y) {
  return names.map((name, i) =>
    svg(
      "g",
      { class: "legend" },
      svg("rect", { x: 8 + i * 190, y, width: 10, height: 10, fill: COLOURS[i % COLOURS.length] }),
      svg("text", { x: 22 + i * 190, y: y + 9 }, name),
    ),
  );
}

/** One row per label; one bar per series; ``values`` are in [0, 1] or null (no boxes to score). */
export function barChart(labels, series, { label }) {
  const width = 620;
  const nameWidth = 190;
  const bar = 12;
  const rowHeight = series.length * bar + 10;
  const top = 22;
  const height = top + labels.length * rowHeight + 24;
  const x = (value) => nameWidth + value * (width - nameWidth - 50);
  const children = [...legend(series.map((s) => s.name), 4)];
  labels.forEach((name, row) => {
    const y0 = top + row * rowHeight;
    children.push(svg("text", { x: nameWidth - 6, y: y0 + rowHeight / 2 + 2, class: "tick end" }, name));
    series.forEach((s, i) => {
      const value = s.values[row];
      const y = y0 + i * bar;
      if (value === null || value === undefined) {
        children.push(svg("text", { x: nameWidth + 4, y: y + bar - 2, class: "tick" }, "no boxes"));
        return;
      }
      children.push(
        svg("rect", { x: nameWidth, y, width: Math.max(1, x(value) - nameWidth), height: bar - 2, fill: COLOURS[i % COLOURS.length], class: "bar" }),
        svg("text", { x: x(value) + 4, y: y + bar - 3, class: "tick" }, value.toFixed(2)),
      );
    });
  });
  for (const tick of [0, 0.5, 1]) {
    children.push(
      svg("line", { x1: x(tick), x2: x(tick), y1: top - 2, y2: height - 20, class: "grid" }),
      svg("text", { x: x(tick), y: height - 6, class: "tick middle" }, String(tick)),
    );
  }
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart bars" }, ...children);
}

/** ``series``: [{name, points: [[x, y], ...]}]; the y axis starts at 0. */
export function lineChart(series, { label, xLabel = "", xMax = 1 }) {
  const width = 620;
  const height = 200;
  const pad = { left: 48, right: 12, top: 24, bottom: 28 };
  const all = series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
  const yMax = all.length ? Math.max(...all) * 1.05 || 1 : 1;
  const x = (value) => pad.left + (value / Math.max(xMax, 1)) * (width - pad.left - pad.right);
  const y = (value) => height - pad.bottom - (value / yMax) * (height - pad.top - pad.bottom);
  const children = [
    ...legend(series.map((s) => s.name), 4),
    svg("line", { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "grid" }),
    svg("text", { x: pad.left - 4, y: y(yMax) + 8, class: "tick end" }, yMax.toFixed(2)),
    svg("text", { x: pad.left - 4, y: y(0) + 4, class: "tick end" }, "0"),
    svg("text", { x: width - pad.right, y: height - 8, class: "tick end" }, `${xLabel} ${xMax}`),
  ];
  series.forEach((s, i) => {
    const points = s.points.filter(([, value]) => Number.isFinite(value));
    if (!points.length) return;
    const d = points.map(([px, py], k) => `${k ? "L" : "M"}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(" ");
    children.push(svg("path", { d, class: "line", stroke: COLOURS[i % COLOURS.length] }));
  });
  if (!series.some((s) => s.points.length)) children.push(svg("text", { x: width / 2, y: height / 2, class: "tick middle" }, "waiting for the first epoch…"));
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart lines" }, ...children);
}
