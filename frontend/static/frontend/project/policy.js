// Admins: how the project decides which proposals to show. One chart per source of
// proposals: the chance that a proposal is kept, by its score, learned from the project's
// own accepts and rejects, against the break-even chance above which showing it saves time.

import { api } from "../api.js";
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 260;
const HEIGHT = 150;
const PAD = { left: 34, right: 8, top: 8, bottom: 26 };
const SOURCE_NAMES = {
  propagation: "Followed from a confirmed box",
  interpolation: "Between confirmed boxes on either side",
  candidate: "Found in the pixels, scored by the index",
  detector: "The trained detector",
  exemplar: "Looks like a confirmed box",
  motion: "Moving against the background",
};

// A calibration's key is its source, with "/labelled-shot" for proposals made on frames
// whose shot already had confirmed boxes (calibrated apart from a shot's first frame),
// "/odd-size" for the pixels' boxes of a size no confirmed box has, "/lost-object" for
// those that may be an object the tracker lost, and "/backed" for boxes another source found
// too where nothing is followed (each calibrated apart too).
function stratumName(key) {
  const [source, ...contexts] = key.split("/");
  let name = SOURCE_NAMES[source] || source;
  if (contexts.includes("labelled-shot")) name += ", beside followed boxes";
  if (contexts.includes("odd-size")) name += ", of a size no confirmed box has";
  if (contexts.includes("lost-object")) name += ", maybe an object the tracker lost";
  if (contexts.includes("backed")) name += ", found by another source too";
  return name;
}

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function chart(curve, breakEven, label) {
  const x = (score) => PAD.left + score * (WIDTH - PAD.left - PAD.right);
  const y = (chance) => HEIGHT - PAD.bottom - chance * (HEIGHT - PAD.top - PAD.bottom);
  const points = curve.length ? curve : [[0, 0], [1, 0]];
  const extended = [[0, points[0][1]], ...points, [1, points[points.length - 1][1]]];
  const path = extended.map(([score, chance], i) => `${i ? "L" : "M"}${x(Math.min(1, Math.max(0, score))).toFixed(1)},${y(chance).toFixed(1)}`).join(" ");
  return svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label, class: "policy-chart" },
    svg("rect", { x: PAD.left, y: PAD.top, width: WIDTH - PAD.left - PAD.right, height: HEIGHT - PAD.top - PAD.bottom, class: "plot" }),
    svg("line", { x1: x(0), x2: x(1), y1: y(breakEven), y2: y(breakEven), class: "break-even" }),
    svg("path", { d: path, class: "curve" }),
    ...points.map(([score, chance]) => svg("circle", { cx: x(Math.min(1, Math.max(0, score))), cy: y(chance), r: 2.5, class: "knot" })),
    svg("text", { x: PAD.left - 4, y: y(1) + 4, class: "tick end" }, "100%"),
    svg("text", { x: PAD.left - 4, y: y(0) + 4, class: "tick end" }, "0%"),
    svg("text", { x: x(0), y: HEIGHT - 8, class: "tick" }, "score 0"),
    svg("text", { x: x(1), y: HEIGHT - 8, class: "tick end" }, "1"),
  );
}

export async function showPolicy({ element, orgPath, projectId }) {
  const policy = await api(`${orgPath}/projects/${projectId}/proposal-policy`);
  const percent = (value) => `${Math.round(value * 100)}%`;
  const summary = policy.cold
    ? `Still learning: ${policy.decisions} proposals decided so far, so each frame shows only its 3 best guesses.`
    : `Each frame shows the proposals whose chance of being kept is above the point where showing one saves ` +
      `more time than rejecting it costs: ${percent(policy.break_even)} overall, higher for a source whose kept ` +
      `proposals often need fixing (the line in each chart).`;
  const sources = Object.entries(policy.sources);
  element.replaceChildren(
    h("p", {}, summary),
    h(
      "p",
      { className: "policy-figures" },
      `Recent frames: ${policy.shown_per_frame} shown of ${policy.generated_per_frame} proposed per frame · `,
      `kept proposals needing a label fix: ${percent(policy.label_wrong)}, a box fix: ${percent(policy.box_loose)}`,
    ),
    policy.honesty.decided
      ? h(
          "p",
          { className: "policy-honesty" },
          `Are the chances honest? Of ${policy.honesty.decided} proposals decided on those frames, `,
          `the policy expected ${policy.honesty.expected_useful} to be kept and ${policy.honesty.useful} were `,
          `(Brier score ${policy.honesty.brier}: 0 is perfect, 0.25 a coin toss).`,
        )
      : "",
    sources.length
      ? h(
          "div",
          { className: "policy-charts" },
          ...sources.map(([source, calibration]) =>
            h(
              "figure",
              {},
              chart(
                calibration.curve,
                policy.break_evens?.[source.split("/")[0]] ?? policy.break_even,
                `${stratumName(source)}: chance of being kept by score`,
              ),
              h(
                "figcaption",
                {},
                `${stratumName(source)} · ${calibration.decisions} decided`,
                policy.shape?.[source]
                  ? " · then moved by the box's size and shape, and by how much of it a followed box covers"
                  : "",
              ),
            ),
          ),
        )
      : h("p", { className: "hint" }, "The charts appear once annotators complete frames."),
  );
}
