// The interactive joint plot of `collector plot --html`: inlined into the page, no library, no network.
// Reads the JSON in #collector-joints and draws one SVG per joint group, sharing one time axis.
// Hover: a cursor across every group and each joint's measured (and commanded) value in the legend.
// Drag across a plot: zoom to that time span; double-click or "reset zoom": the whole take.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("collector-joints").textContent);
  const root = document.getElementById("joints-plot");
  // The SVG namespace as the HTML parser assigns it: the page then holds no URL at all.
  const NS = document.createRange().createContextualFragment("<svg></svg>").firstChild.namespaceURI;
  const WIDTH = 960, HEIGHT = 180, LEFT = 72, RIGHT = 12, TOP = 8, BOTTOM = 30;
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf"];
  const full = [data.t[0], data.t[data.t.length - 1]];
  const state = { view: full.slice(), hover: null, panels: [] };
  window.collectorPlot = state;

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.append(el);
    return el;
  }

  // Ticks at 1, 2 or 5 times a power of ten; labels with just enough decimals (never an offset).
  function ticks(low, high, count) {
    const raw = (high - low) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * (1 - 1e-6)) || raw;
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const out = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push([v, v.toFixed(decimals)]);
    return out;
  }

  function firstAtOrAfter(times, t) {
    let lo = 0, hi = times.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (times[mid] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function nearest(times, t) {
    const i = firstAtOrAfter(times, t);
    if (i <= 0) return 0;
    if (i >= times.length) return times.length - 1;
    return t - times[i - 1] <= times[i] - t ? i - 1 : i;
  }

  function visibleRange(times) {
    const a = Math.max(0, firstAtOrAfter(times, state.view[0]) - 1);
    const b = Math.min(times.length, firstAtOrAfter(times, state.view[1]) + 1);
    return [a, b];
  }

  function yLimits(group) {
    let low = Infinity, high = -Infinity;
    const scan = (times, series) => {
      if (!series) return;
      const [a, b] = visibleRange(times);
      for (const values of series) for (let i = a; i < b; i++) {
        const v = values[i];
        if (v === null) continue;
        if (v < low) low = v;
        if (v > high) high = v;
      }
    };
    scan(data.t, group.measured);
    scan(data.t_cmd, group.commanded);
    if (!isFinite(low)) { low = -group.min_span / 2; high = group.min_span / 2; }
    if (high - low < group.min_span) {  // sensor noise stays a flat line
      const middle = (low + high) / 2;
      return [middle - group.min_span / 2, middle + group.min_span / 2];
    }
    const pad = 0.05 * (high - low);
    return [low - pad, high + pad];
  }

  function makePanel(group, index) {
    const box = document.createElement("div");
    box.className = "joint-group";
    const plot = svg("svg", { width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
                              "data-group": group.name, role: "img", "aria-label": `${group.label} against time (s)` });
    const clipId = `clip-${index}`;
    svg("rect", { x: LEFT, y: TOP, width: WIDTH - LEFT - RIGHT, height: HEIGHT - TOP - BOTTOM },
        svg("clipPath", { id: clipId }, svg("defs", {}, plot)));
    const axes = svg("g", { class: "axes" }, plot);
    const lines = svg("g", { "clip-path": `url(#${clipId})` }, plot);
    const ylabel = svg("text", { class: "ylabel", x: 14, y: (HEIGHT - BOTTOM + TOP) / 2, "text-anchor": "middle",
                                 transform: `rotate(-90 14 ${(HEIGHT - BOTTOM + TOP) / 2})` }, plot);
    ylabel.textContent = group.label;
    const xlabel = svg("text", { class: "xlabel", x: (WIDTH + LEFT) / 2, y: HEIGHT - 2, "text-anchor": "middle" }, plot);
    xlabel.textContent = "time (s)";
    const cursor = svg("line", { class: "cursor", y1: TOP, y2: HEIGHT - BOTTOM, visibility: "hidden" }, plot);
    const brush = svg("rect", { class: "brush", y: TOP, height: HEIGHT - TOP - BOTTOM, width: 0, visibility: "hidden" }, plot);
    const legend = document.createElement("div");
    legend.className = "legend";
    const readouts = group.joints.map((joint, k) => {
      const item = document.createElement("span");
      item.className = "joint";
      item.dataset.joint = joint;
      item.style.color = COLORS[k % COLORS.length];
      item.textContent = joint;
      legend.append(item);
      return item;
    });
    box.append(plot, legend);
    root.append(box);
    const panel = { group, plot, axes, lines, cursor, brush, readouts, y: [0, 1] };
    wire(panel);
    return panel;
  }

  const xOf = (t) => LEFT + (t - state.view[0]) / (state.view[1] - state.view[0]) * (WIDTH - LEFT - RIGHT);
  const tOf = (x) => state.view[0] + (x - LEFT) / (WIDTH - LEFT - RIGHT) * (state.view[1] - state.view[0]);

  function draw(panel) {
    const { group, axes, lines } = panel;
    const [low, high] = panel.y = yLimits(group);
    const yOf = (v) => TOP + (high - v) / (high - low) * (HEIGHT - TOP - BOTTOM);
    axes.replaceChildren();
    svg("rect", { x: LEFT, y: TOP, width: WIDTH - LEFT - RIGHT, height: HEIGHT - TOP - BOTTOM, class: "frame" }, axes);
    for (const [v, label] of ticks(low, high, 5)) {
      svg("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: yOf(v), y2: yOf(v), class: "grid" }, axes);
      svg("text", { x: LEFT - 4, y: yOf(v) + 4, "text-anchor": "end", class: "ytick" }, axes).textContent = label;
    }
    for (const [v, label] of ticks(state.view[0], state.view[1], 8)) {
      svg("line", { x1: xOf(v), x2: xOf(v), y1: TOP, y2: HEIGHT - BOTTOM, class: "grid" }, axes);
      svg("text", { x: xOf(v), y: HEIGHT - BOTTOM + 13, "text-anchor": "middle", class: "xtick" }, axes).textContent = label;
    }
    lines.replaceChildren();
    const trace = (times, values, k, dashed) => {
      const [a, b] = visibleRange(times);
      const points = [];
      for (let i = a; i < b; i++) if (values[i] !== null) points.push(`${xOf(times[i]).toFixed(1)},${yOf(values[i]).toFixed(1)}`);
      svg("polyline", { points: points.join(" "), fill: "none", stroke: COLORS[k % COLORS.length],
                        "stroke-width": dashed ? 1 : 1.3, "stroke-dasharray": dashed ? "5 3" : "none",
                        class: dashed ? "commanded" : "measured", "data-joint": group.joints[k] }, lines);
    };
    group.measured.forEach((values, k) => trace(data.t, values, k, false));
    if (group.commanded) group.commanded.forEach((values, k) => trace(data.t_cmd, values, k, true));
  }

  function format(v, unit) {
    if (v === null || v === undefined) return "–";
    return `${v.toFixed(unit === "m" ? 4 : 3)}${unit ? " " + unit : ""}`;
  }

  function hover(t) {
    state.hover = t;
    const i = nearest(data.t, t);
    const ic = data.t_cmd ? nearest(data.t_cmd, t) : null;
    for (const panel of state.panels) {
      panel.cursor.setAttribute("x1", xOf(data.t[i]));
      panel.cursor.setAttribute("x2", xOf(data.t[i]));
      panel.cursor.setAttribute("visibility", "visible");
      const { group } = panel;
      panel.readouts.forEach((item, k) => {
        let text = `${group.joints[k]}: ${format(group.measured[k][i], group.unit)}`;
        if (group.commanded) text += ` (cmd ${format(group.commanded[k][ic], group.unit)})`;
        item.textContent = text;
      });
    }
    document.getElementById("joints-time").textContent = `t = ${data.t[i].toFixed(3)} s`;
  }

  function zoom(t0, t1) {
    state.view = [Math.max(full[0], Math.min(t0, t1)), Math.min(full[1], Math.max(t0, t1))];
    if (state.view[1] - state.view[0] <= 0) state.view = full.slice();
    state.panels.forEach(draw);
    document.getElementById("joints-view").textContent =
      `showing ${state.view[0].toFixed(2)} – ${state.view[1].toFixed(2)} s of ${full[0].toFixed(2)} – ${full[1].toFixed(2)} s`;
  }

  function wire(panel) {
    const { plot, brush } = panel;
    let dragFrom = null;
    const xAt = (event) => {
      const r = plot.getBoundingClientRect();
      return Math.min(WIDTH - RIGHT, Math.max(LEFT, (event.clientX - r.left) * WIDTH / r.width));
    };
    plot.addEventListener("mousedown", (event) => { dragFrom = xAt(event); event.preventDefault(); });
    plot.addEventListener("mousemove", (event) => {
      const x = xAt(event);
      hover(tOf(x));
      if (dragFrom !== null) {
        brush.setAttribute("x", Math.min(dragFrom, x));
        brush.setAttribute("width", Math.abs(x - dragFrom));
        brush.setAttribute("visibility", "visible");
      }
    });
    window.addEventListener("mouseup", (event) => {
      if (dragFrom === null) return;
      const x = xAt(event);
      brush.setAttribute("visibility", "hidden");
      if (Math.abs(x - dragFrom) > 4) zoom(tOf(dragFrom), tOf(x));
      dragFrom = null;
    });
    plot.addEventListener("dblclick", () => zoom(full[0], full[1]));
  }

  state.panels = data.groups.map(makePanel);
  document.getElementById("joints-reset").addEventListener("click", () => zoom(full[0], full[1]));
  zoom(full[0], full[1]);
})();
