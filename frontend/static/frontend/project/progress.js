// Progress: frames complete per video, confirmed boxes per label (every label, most first, so
// the long tail shows), and proposals kept against rejected per day. Plain SVG, no library.

import { api } from "../api.js";
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const BAR_ROW = 20;
const NAME_WIDTH = 170;
const CHART_WIDTH = 560;

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function text(x, y, content, className = "tick") {
  return svg("text", { x, y, class: className }, content);
}

function percent(complete, total) {
  return total ? Math.round((100 * complete) / total) : 0;
}

export class ProgressPanel {
  constructor({ element, orgPath, projectId }) {
    Object.assign(this, { element });
    this.path = `${orgPath}/projects/${projectId}/progress?days=30`;
    this.loads = 0;
  }

  async refresh() {
    const progress = await api(this.path);
    this.element.replaceChildren(this.#frames(progress), this.#labels(progress.labels), this.#proposals(progress.proposals));
    this.element.dataset.loads = String(++this.loads);
  }

  #frames(progress) {
    const row = (name, complete, total, attributes = {}) =>
      h(
        "li",
        { className: "progress-row", ...attributes },
        h("span", { className: "progress-name" }, name),
        h("progress", { max: Math.max(total, 1), value: complete, "aria-label": `${name}: frames complete` }),
        h("span", { className: "progress-figure" }, `${complete} of ${total} frames · ${percent(complete, total)} %`),
      );
    return h(
      "figure",
      { className: "progress-frames" },
      h("figcaption", {}, "Frames complete"),
      h(
        "ul",
        { "aria-label": "Frames complete per video" },
        row("Whole project", progress.complete, progress.total, { "data-progress": "project" }),
        ...progress.videos.map((video) => row(video.name, video.complete, video.total, { "data-video-id": video.video_id ?? "stills" })),
      ),
    );
  }

  #labels(labels) {
    const caption = h("figcaption", {}, "Confirmed boxes per label, most first");
    if (!labels.length) return h("figure", {}, caption, h("p", { className: "empty" }, "No labels yet."));
    const peak = Math.max(1, ...labels.map((label) => label.confirmed));
    const barSpace = CHART_WIDTH - NAME_WIDTH - 60;
    const height = labels.length * BAR_ROW + 4;
    const chart = svg("svg", {
      class: "label-chart",
      viewBox: `0 0 ${CHART_WIDTH} ${height}`,
      width: CHART_WIDTH,
      height,
      role: "img",
      "aria-label": `Confirmed boxes per label: ${labels.map((label) => `${label.name} ${label.confirmed}`).join(", ")}`,
    });
    labels.forEach((label, index) => {
      const y = index * BAR_ROW + 2;
      // A label with any box shows at least a sliver, so the tail stays visible beside the head.
      const width = label.confirmed ? Math.max(2, (label.confirmed / peak) * barSpace) : 0;
      chart.append(
        svg(
          "g",
          { "data-label": label.name, "data-count": label.confirmed },
          text(NAME_WIDTH - 6, y + 14, label.name, "tick end"),
          svg("rect", { x: NAME_WIDTH, y: y + 3, width: width.toFixed(1), height: BAR_ROW - 6, class: label.confirmed ? "bar" : "bar zero" }),
          text(NAME_WIDTH + width + 5, y + 14, String(label.confirmed), "tick count"),
        ),
      );
    });
    return h("figure", { className: "progress-labels" }, caption, h("div", { className: "chart-scroll" }, chart));
  }

  #proposals(days) {
    const caption = h("figcaption", {}, "Proposals kept (blue) and rejected (red) per day, last 30 days");
    const width = CHART_WIDTH;
    const height = 170;
    const left = 36;
    const bottom = 22;
    const plotWidth = width - left - 8;
    const plotHeight = height - bottom - 8;
    const peak = Math.max(1, ...days.flatMap((day) => [day.accepted, day.rejected]));
    const x = (index) => left + (days.length > 1 ? (index / (days.length - 1)) * plotWidth : plotWidth / 2);
    const y = (value) => 8 + plotHeight - (value / peak) * plotHeight;
    const line = (key, className) =>
      svg("polyline", { class: className, points: days.map((day, index) => `${x(index).toFixed(1)},${y(day[key]).toFixed(1)}`).join(" ") });
    const kept = days.reduce((sum, day) => sum + day.accepted, 0);
    const rejected = days.reduce((sum, day) => sum + day.rejected, 0);
    const chart = svg(
      "svg",
      {
        class: "proposal-chart",
        viewBox: `0 0 ${width} ${height}`,
        width,
        height,
        role: "img",
        "aria-label": `Proposals in the last ${days.length} days: ${kept} kept, ${rejected} rejected`,
      },
      svg("rect", { x: left, y: 8, width: plotWidth, height: plotHeight, class: "plot" }),
      text(left - 4, 16, String(peak), "tick end"),
      text(left - 4, 8 + plotHeight, "0", "tick end"),
      text(left, height - 6, days[0]?.day ?? "", "tick"),
      text(left + plotWidth, height - 6, days.at(-1)?.day ?? "", "tick end"),
      line("accepted", "kept"),
      line("rejected", "rejected"),
    );
    const share = kept + rejected ? `${Math.round((100 * kept) / (kept + rejected))} % kept` : "none decided yet";
    return h("figure", { className: "progress-proposals" }, caption, chart, h("p", { className: "hint", "data-proposal-totals": "" }, `${kept} kept, ${rejected} rejected: ${share}.`));
  }
}
