// A tiny bar chart of daily counts (oldest first) as inline SVG, with its total and peak in words.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 112;
const HEIGHT = 24;

export function sparkline(values, title) {
  const figure = document.createElement("span");
  figure.className = "sparkline";
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("width", WIDTH);
  svg.setAttribute("height", HEIGHT);
  svg.setAttribute("role", "img");
  const total = values.reduce((sum, value) => sum + value, 0);
  const peak = Math.max(1, ...values);
  svg.setAttribute("aria-label", `${title}: ${total} in ${values.length} days, at most ${Math.max(0, ...values)} a day`);
  const step = WIDTH / Math.max(values.length, 1);
  values.forEach((value, index) => {
    const bar = document.createElementNS(SVG, "rect");
    const height = value ? Math.max(1.5, (value / peak) * (HEIGHT - 2)) : 0.75;
    bar.setAttribute("x", (index * step + 1).toFixed(1));
    bar.setAttribute("y", (HEIGHT - height).toFixed(1));
    bar.setAttribute("width", Math.max(1, step - 2).toFixed(1));
    bar.setAttribute("height", height.toFixed(1));
    bar.setAttribute("class", value ? "bar" : "bar zero");
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = String(value);
    bar.append(tip);
    svg.append(bar);
  });
  const sum = document.createElement("span");
  sum.className = "sparkline-total";
  sum.textContent = String(total);
  figure.append(svg, sum);
  return figure;
}
