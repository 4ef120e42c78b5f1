// The operator's dashboard: renders the session's live state and sends button presses.
// Keyboard shortcuts are ordinary page key events (no global hooks), so they work on Wayland and
// through SSH port forwarding, and only while this tab has focus.
"use strict";

const TOKEN = document.querySelector('meta[name="collector-token"]').content;
const SHORTCUTS = { s: "start", " ": "stop", y: "success", n: "failure", d: "discard", r: "rerecord" };
const $ = (id) => document.getElementById(id);
let state = null;
const cameraLoops = new Set();

function text(id, value) { $(id).textContent = value == null ? "" : String(value); }

function showMessage(msg, isError) {
  const el = $("message");
  el.textContent = msg || "";
  el.classList.toggle("error", !!isError);
}

async function control(action) {
  const button = document.querySelector(`button[data-action="${action}"]`);
  if (button && button.disabled) return;
  try {
    const reply = await fetch("/api/control", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Collector-Token": TOKEN },
      body: JSON.stringify({ action }),
    });
    const body = await reply.json();
    showMessage(body.ok ? body.message : body.error, !body.ok);
  } catch (err) {
    showMessage(`could not reach the session: ${err}`, true);
  }
}

// One request in flight per camera: the next frame is asked for when this one has arrived,
// so a slow link shows fewer frames instead of queueing old ones.
async function cameraLoop(name, img, caption) {
  let seq = 0;
  while (true) {
    try {
      const reply = await fetch(`/camera/${encodeURIComponent(name)}.jpg?after=${seq}`, { cache: "no-store" });
      if (reply.status === 200) {
        seq = parseInt(reply.headers.get("X-Frame-Seq") || "0", 10);
        const url = URL.createObjectURL(await reply.blob());
        const old = img.src;
        img.src = url;
        img.dataset.seq = String(seq);
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        caption.textContent = `${name} · frame ${seq} · t=${reply.headers.get("X-Frame-Time")} s`;
      } else if (reply.status !== 204) {
        await new Promise((r) => setTimeout(r, 500));
      }
    } catch (err) {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function ensureCameras(names) {
  for (const name of names) {
    if (cameraLoops.has(name)) continue;
    cameraLoops.add(name);
    $("no-cameras").hidden = true;
    const figure = document.createElement("figure");
    figure.className = "camera";
    const img = document.createElement("img");
    img.alt = `camera ${name}`;
    img.id = `camera-${name}`;
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    figure.append(img, caption);
    $("cameras").append(figure);
    cameraLoop(name, img, caption);
  }
  const tiles = $("cameras").querySelectorAll("figure.camera").length;
  $("cameras").style.gridTemplateColumns = `repeat(${columnsFor(tiles)}, minmax(0, 1fr))`;
}

let coverageKey = "";

function renderCoverage(cov, cell) {
  // Rebuilt only when it changed, so the table is not replaced four times a second.
  const key = JSON.stringify([cov, cell]);
  if (key === coverageKey) return;
  coverageKey = key;
  const root = $("coverage");
  root.textContent = "";
  if (!cov) return;
  text("coverage-total", `${cov.done}/${cov.needed} good takes`);
  const byKey = new Map(cov.cells.map((c) => [`${c.task}|${c.lighting}|${c.weight}`, c]));
  const table = document.createElement("table");
  table.className = "coverage";
  table.id = "coverage-table";
  const head = table.insertRow();
  for (const label of ["task / weight", ...cov.lighting]) {
    const th = document.createElement("th");
    th.textContent = label;
    head.append(th);
  }
  for (const task of cov.tasks) {
    for (const weight of cov.weights) {
      const row = table.insertRow();
      row.insertCell().textContent = `${task} / ${weight}`;
      for (const lighting of cov.lighting) {
        const c = byKey.get(`${task}|${lighting}|${weight}`);
        const td = row.insertCell();
        td.textContent = `${c.good}/${c.needed}`;
        td.dataset.cell = `${task}|${lighting}|${weight}`;
        td.title = `${c.attempts} attempt(s)`;
        const policy = c.policy_success;
        if (policy) {
          // the latest evaluation's success beside the demonstrations: where the policy is weak, collect more
          const p = document.createElement("span");
          p.className = "policy-success";
          p.textContent = ` · p ${Math.round(100 * policy.success_rate)}%`;
          td.append(p);
          td.title += `; policy ${policy.successes}/${policy.rollouts} rollouts succeeded`;
        } else if (cov.policy_evaluations && cov.policy_evaluations[task]) {
          td.append(" · p -");
          td.title += "; the policy was not evaluated in this cell";
        }
        td.className = c.state === "done" ? "done" : c.state === "gave_up" ? "gave_up" : c.good > 0 ? "partial" : "";
        if (cell && cell.task === task && cell.lighting === lighting && cell.weight === weight) td.classList.add("current");
      }
    }
  }
  root.append(table);
  const evaluated = Object.entries(cov.policy_evaluations || {});
  if (evaluated.length) {
    const legend = document.createElement("div");
    legend.id = "coverage-policy";
    legend.className = "legend";
    legend.textContent = "p: policy success in " + evaluated.map(([task, e]) =>
      `${task}: ${e.policy} ${String(e.checkpoint).split("/").pop()} ` +
      `(${Math.round(100 * e.success_rate)}% of ${e.rollouts} rollouts, ${String(e.created).slice(0, 16).replace("T", " ")} UTC)`
    ).join("; ");
    root.append(legend);
  }
}

function renderLast(last) {
  const list = $("qa-problems");
  list.textContent = "";
  if (!last) { text("last-episode", "none yet"); return; }
  const el = $("last-episode");
  el.textContent = "";
  const qa = document.createElement("span");
  qa.className = last.qa === "pass" ? "qa-pass" : last.qa === "fail" ? "qa-fail" : "";
  qa.id = "last-qa";
  qa.textContent = `QA ${last.qa}`;
  const dur = last.duration_s == null ? "" : ` · ${Number(last.duration_s).toFixed(1)} s`;
  el.append(`${last.episode_id} · ${last.status} · ${last.outcome}${dur} · `, qa);
  for (const problem of last.qa_problems || []) {
    const li = document.createElement("li");
    li.textContent = problem;
    list.append(li);
  }
}

// Joint state as one small plot per joint group (the robot YAML's groups), in the group's unit,
// over the last HISTORY_S seconds of the state the event stream delivered.
const HISTORY_S = 10;
const SPARK = { width: 240, height: 54, left: 46, right: 4, top: 4, bottom: 4 };
const COLORS = ["#5fa8ff", "#ffab40", "#6fdc8c", "#ff6b6b", "#c39bff", "#d7a27a", "#ff8fd0", "#bbbbbb", "#e3e36b",
                "#4fd6e6"];
const SVG_NS = document.createRange().createContextualFragment("<svg></svg>").firstChild.namespaceURI;
const jointHistory = [];  // [t, position[]]
let sparkGroups = [];
let sparkKey = "";

function svgElement(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  parent.append(el);
  return el;
}

function groupsFor(s, width) {
  if (s.joint_groups && s.joint_groups.length) return s.joint_groups;
  const names = (s.robot && s.robot.names) || [];
  const joints = Array.from({ length: width }, (_, i) => names[i] || `q${i}`);
  return [{ name: "joints", unit: "", joints, indices: joints.map((_, i) => i), min_span: 0.05 }];
}

function buildSparklines(groups) {
  const root = $("joints");
  root.textContent = "";
  sparkGroups = groups.map((group) => {
    const box = document.createElement("div");
    box.className = "joint-group";
    box.dataset.group = group.name;
    const title = document.createElement("div");
    title.className = "group-title";
    title.textContent = group.unit ? `${group.name} (${group.unit})` : group.name;
    const plot = document.createElementNS(SVG_NS, "svg");
    plot.setAttribute("viewBox", `0 0 ${SPARK.width} ${SPARK.height}`);
    plot.setAttribute("class", "sparkline");
    const high = svgElement("text", { x: SPARK.left - 3, y: SPARK.top + 8, "text-anchor": "end", class: "ylimit" }, plot);
    const low = svgElement("text", { x: SPARK.left - 3, y: SPARK.height - SPARK.bottom, "text-anchor": "end",
                                     class: "ylimit" }, plot);
    svgElement("rect", { x: SPARK.left, y: SPARK.top, width: SPARK.width - SPARK.left - SPARK.right,
                         height: SPARK.height - SPARK.top - SPARK.bottom, class: "frame" }, plot);
    const lines = group.joints.map((joint, k) => svgElement("polyline", {
      fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 1.2, "data-joint": joint }, plot));
    const legend = document.createElement("div");
    legend.className = "legend";
    const values = group.joints.map((joint, k) => {
      const item = document.createElement("span");
      item.style.color = COLORS[k % COLORS.length];
      item.dataset.joint = joint;
      legend.append(item);
      return item;
    });
    box.append(title, plot, legend);
    root.append(box);
    return { group, lines, values, high, low };
  });
}

function formatValue(value, unit) {
  if (value == null) return "—";  // the server sends null for a NaN/inf reading
  return `${value.toFixed(unit === "m" ? 4 : 3)}${unit ? " " + unit : ""}`;
}

function renderRobot(s) {
  const robot = s.robot;
  if (!robot) { text("robot-time", "no joint state yet"); return; }
  text("robot-time", `t = ${robot.t.toFixed(2)} s`);
  const groups = groupsFor(s, robot.position.length);
  const key = JSON.stringify(groups);
  if (key !== sparkKey) { sparkKey = key; buildSparklines(groups); }
  const last = jointHistory[jointHistory.length - 1];
  if (last && robot.t < last[0]) jointHistory.length = 0;  // a new take restarted the clock
  if (!last || robot.t !== last[0]) jointHistory.push([robot.t, robot.position]);
  while (jointHistory.length > 2 && jointHistory[0][0] < robot.t - HISTORY_S) jointHistory.shift();
  const t1 = robot.t, t0 = t1 - HISTORY_S;
  const xOf = (t) => SPARK.left + (t - t0) / HISTORY_S * (SPARK.width - SPARK.left - SPARK.right);
  for (const { group, lines, values, high, low } of sparkGroups) {
    let lo = Infinity, hi = -Infinity;
    for (const [, q] of jointHistory) {
      for (const i of group.indices) if (q[i] != null) { lo = Math.min(lo, q[i]); hi = Math.max(hi, q[i]); }
    }
    if (!Number.isFinite(lo)) { lo = 0; hi = 0; }  // nothing but null readings so far
    if (hi - lo < group.min_span) {  // sensor noise on a still joint stays a flat line
      const middle = (hi + lo) / 2;
      lo = middle - group.min_span / 2;
      hi = middle + group.min_span / 2;
    }
    const yOf = (v) => SPARK.top + (hi - v) / (hi - lo) * (SPARK.height - SPARK.top - SPARK.bottom);
    high.textContent = hi.toFixed(group.unit === "m" ? 4 : 3);
    low.textContent = lo.toFixed(group.unit === "m" ? 4 : 3);
    group.indices.forEach((index, k) => {
      // A robot at rest sends one state: draw it as a level line across the window.
      const samples = jointHistory.length > 1 ? jointHistory : [[t0, jointHistory[0][1]], ...jointHistory];
      lines[k].setAttribute("points", samples.filter(([, q]) => q[index] != null)
        .map(([t, q]) => `${xOf(t).toFixed(1)},${yOf(q[index]).toFixed(1)}`).join(" "));
      values[k].textContent = `${group.joints[k]} ${formatValue(robot.position[index], group.unit)}`;
    });
  }
}

// Which take a button acts on: the one recording (Stop, Discard while recording), else the last one.
// Named on the button itself, so a verdict after a take that ended by itself cannot be read as
// judging the next take, whose task is already shown above the buttons.
const BUTTON_LABELS = { start: "Start", stop: "Stop", success: "Success", failure: "Failure", discard: "Discard",
                        rerecord: "Re-record" };

function buttonTarget(action, s) {
  const recording = s.phase === "recording" && s.episode ? s.episode.episode_id : null;
  const last = s.last_episode ? s.last_episode.episode_id : null;
  if (action === "start") return null;
  if (action === "stop") return recording;
  if (action === "discard") return recording || last;
  return last;
}

function labelButton(button, s) {
  const action = button.dataset.action;
  const target = buttonTarget(action, s);
  const label = target ? `${target}: ${BUTTON_LABELS[action]}` : BUTTON_LABELS[action];
  if (button.dataset.label === label) return;
  button.dataset.label = label;
  button.dataset.episode = target || "";
  const kbd = button.querySelector("kbd");
  button.replaceChildren(label + " ", kbd);
}

function columnsFor(count) {
  // Up to three side by side, four as 2 x 2, more in rows of three: no empty tile for 1-4 cameras.
  return count <= 3 ? Math.max(count, 1) : count === 4 ? 2 : 3;
}

function render(s) {
  state = s;
  text("plan", s.plan ? `plan ${s.plan}` : "");
  text("station", s.station ? `station ${s.station} · operator ${s.operator || "?"}` : "");
  const phase = $("phase");
  phase.textContent = s.phase.replace("_", " ");
  phase.className = `badge ${s.phase}`;
  const cell = s.cell;
  text("task", cell ? cell.task : "—");
  text("instruction", s.instruction);
  text("condition", cell ? `lighting: ${cell.lighting} · weight: ${cell.weight}` : "");
  text("setup-note", s.setup_note);
  text("timer", s.elapsed_s == null ? "0.0" : s.elapsed_s.toFixed(1));
  text("limit", s.episode && s.episode.time_limit_s ? `/ ${s.episode.time_limit_s} s` : "");
  text("episode-id", s.episode ? s.episode.episode_id : "");
  for (const button of document.querySelectorAll("#buttons button")) {
    button.disabled = !(s.controls || []).includes(button.dataset.action);
    labelButton(button, s);
  }
  if (s.message && !$("message").classList.contains("error")) showMessage(s.message, false);
  renderCoverage(s.coverage, cell);
  renderLast(s.last_episode);
  renderRobot(s);
  ensureCameras(s.cameras || []);
}

function connect() {
  const events = new EventSource("/api/events");
  events.onopen = () => text("connection", "live");
  events.onmessage = (event) => render(JSON.parse(event.data));
  events.onerror = () => text("connection", "reconnecting…");
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
  const action = SHORTCUTS[event.key.toLowerCase()];
  if (!action) return;
  event.preventDefault();
  control(action);
});
for (const button of document.querySelectorAll("#buttons button")) {
  button.addEventListener("click", () => {
    button.blur(); // so Space, the stop shortcut, does not also press the focused button again
    control(button.dataset.action);
  });
}
connect();
