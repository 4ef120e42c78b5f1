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
        td.className = c.state === "done" ? "done" : c.state === "gave_up" ? "gave_up" : c.good > 0 ? "partial" : "";
        if (cell && cell.task === task && cell.lighting === lighting && cell.weight === weight) td.classList.add("current");
      }
    }
  }
  root.append(table);
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

function renderRobot(robot) {
  const root = $("joints");
  if (!robot) { text("robot-time", "no joint state yet"); return; }
  text("robot-time", `t = ${robot.t.toFixed(2)} s`);
  root.textContent = "";
  robot.position.forEach((value, i) => {
    const div = document.createElement("div");
    const name = robot.names && robot.names[i] ? robot.names[i] : `q${i}`;
    div.textContent = `${name}: ${value.toFixed(3)}`;
    root.append(div);
  });
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
  }
  if (s.message && !$("message").classList.contains("error")) showMessage(s.message, false);
  renderCoverage(s.coverage, cell);
  renderLast(s.last_episode);
  renderRobot(s.robot);
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
