// The reviewer's page: an episode list with filters and a queue, an episode played from its recorded
// frames under one playhead, a timeline, and the labels a reviewer gives (docs/review.md).
// Everything is on the episode's own clock (seconds, as recorded). Keyboard first: see SHORTCUTS.
"use strict";

const TOKEN = document.querySelector('meta[name="collector-token"]').content;
const $ = (id) => document.getElementById(id);
const SPEEDS = [0.25, 0.5, 1, 2, 4];
const SHORTCUTS = [
  ["Space", "play / pause"], ["← / →", "one frame back / forward"], ["Shift+← / Shift+→", "one second back / forward"],
  ["Home / End", "start / end of the take"], ["[ / ]", "slower / faster"],
  ["B", "subtask boundary at the playhead (B, B, B, B marks three subtasks in a row; inside a subtask it splits it)"],
  ["1–9", "name the subtask under the playhead with the task's Nth skill (in reject mode: toggle the Nth reason)"],
  ["M", "move the nearest subtask boundary to the playhead"], ["X", "delete the subtask under the playhead"],
  ["G", "accept the suggested subtasks (those that do not overlap yours)"],
  ["I", "add a phrasing of the instruction (Enter adds it, Esc leaves the field)"], ["T", "notes"],
  ["O", "outcome override: as recorded → success → failure"],
  ["A", "accept the take and save"], ["R", "reject: then 1–9 toggle reasons, Enter saves, Esc cancels"],
  ["S or Ctrl+S", "save"], ["N", "next episode in the queue (saves unsaved labels first)"],
  ["?", "this help"], ["Esc", "close help, leave a text field, cancel reject"],
];
const LANE_COLORS = ["#5aa9ff", "#ffb14e", "#7be3a0", "#ff7a85", "#c58bff", "#ffe36e", "#56d6d6", "#ff9ee6"];
const SKILL_COLORS = ["#3d7ddb", "#2e9d5b", "#c99a2e", "#9b59b6", "#c8463d", "#16a085", "#d35400", "#7f8c8d"];
const SOURCE_COLORS = { operator: "#3d7ddb", policy: "#d35400" };
const EVENT_COLORS = { gap: "#ff8a80", frozen: "#ffb14e", limit: "#ff5252", safety: "#ffd27a" };
const LEFT = 110, RIGHT = 12;

const S = {
  info: null, episodes: [], ep: null, t: 0, playing: false, speed: 1, cameras: [],
  labels: emptyLabels(), dirty: false, pendingMark: null, rejectMode: false, saving: null, lastRecord: null,
  message: "",
};
window.review = S; // for the browser test and the curious

function emptyLabels() {
  return { verdict: null, reasons: [], outcome: null, subtasks: [], instructions: [], notes: "" };
}

// -- server ----------------------------------------------------------------------------------------
async function api(path, options = {}) {
  const reply = await fetch(path, { ...options, headers: { "X-Collector-Token": TOKEN, "Content-Type": "application/json" } });
  const body = await reply.json().catch(() => ({ ok: false, error: `HTTP ${reply.status}` }));
  if (!reply.ok) throw new Error(body.error || `HTTP ${reply.status}`);
  return body;
}

function reviewer() { return $("reviewer").value.trim() || (S.info && S.info.reviewer) || "reviewer"; }

function filterQuery() {
  const q = new URLSearchParams();
  document.querySelectorAll("#filters select").forEach((el) => { if (el.value) q.set(el.dataset.filter, el.value); });
  q.set("reviewer", reviewer());
  return q;
}

// -- list ----------------------------------------------------------------------------------------------
async function loadInfo() {
  S.info = await api("/api/info");
  $("dataset").textContent = S.info.dataset;
  for (const [name, values] of Object.entries(S.info.filters)) {
    const select = $(`f-${name}`);
    if (select) values.forEach((v) => select.add(new Option(v, v)));
  }
  S.info.verdicts.forEach((v) => $("f-verdict").add(new Option(v, v)));
}

async function loadList() {
  S.episodes = await api(`/api/episodes?${filterQuery()}`);
  const body = $("episode-list").tBodies[0];
  body.replaceChildren(...S.episodes.map((e) => {
    const row = document.createElement("tr");
    row.dataset.episode = e.episode_id;
    row.classList.toggle("current", !!S.ep && S.ep.episode_id === e.episode_id);
    const mine = e.mine ? ` (me: ${e.mine})` : "";
    for (const text of [e.episode_id.replace("episode_", ""), e.task, `${e.lighting}/${e.weight}`,
                        e.outcome_override ? `${e.outcome_override}*` : e.outcome, e.qa, e.verdict + mine]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    row.lastChild.className = `verdict-${e.verdict}`;
    row.addEventListener("click", () => openEpisode(e.episode_id));
    return row;
  }));
  $("list-count").textContent = `${S.episodes.length} shown`;
}

// Opening another take never drops labels: if they cannot be saved, the page stays on this take.
async function saveBeforeLeaving() {
  return !(S.dirty && S.ep) || !!(await save());
}

async function nextEpisode() {
  if (!(await saveBeforeLeaving())) return;
  const asked = S.openRequest || 0;
  const q = filterQuery();
  q.delete("verdict"); q.delete("reviewed");
  q.set("queue", $("queue").value);
  if (S.ep) q.set("after", S.ep.episode_id);
  let episode_id;
  try {
    ({ episode_id } = await api(`/api/next?${q}`));
  } catch (err) {
    return setSaveState($("save-state").dataset.state, `queue: ${err.message}`);
  }
  // A take asked for while the queue answered (the URL, a click) wins over the queue's choice: without
  // this, a page opened on #episode_2 while its start-up queue lookup was slow landed on the queue's take.
  if ((S.openRequest || 0) !== asked) return;
  if (episode_id) await openEpisode(episode_id);
  else setSaveState(S.dirty ? "dirty" : "saved", "the queue is empty");
}

// -- episode -----------------------------------------------------------------------------------------
async function openEpisode(id) {
  // Counted when asked for, so the last ask wins whatever answers first (the save, the queue, the take).
  const request = (S.openRequest = (S.openRequest || 0) + 1);
  // Unsaved labels are saved before anything else opens, under the name they were made with.
  if (!(await saveBeforeLeaving()) || request !== S.openRequest) return;
  pause();
  let ep;
  try {
    ep = await api(`/api/episode/${encodeURIComponent(id)}?reviewer=${encodeURIComponent(reviewer())}`);
  } catch (err) {
    return setSaveState(S.dirty ? "dirty" : $("save-state").dataset.state, `cannot open ${id}: ${err.message}`);
  }
  if (request !== S.openRequest) return; // a take asked for later (a click, the URL) wins over this one
  // The frames go first; the timeline and the suggestions are asked for beside them and drawn on arrival.
  Object.assign(ep, { joints: null, control: [], events: [], timelineLoading: true,
                      suggestions: { subtasks: [], idle: [], available: false, loading: true } });
  const same = S.ep && S.ep.episode_id === ep.episode_id; // another reviewer's name: stay where the playhead is
  S.ep = ep;
  S.t = same ? Math.max(ep.t0, Math.min(ep.t1, S.t)) : ep.t0;
  S.pendingMark = null;
  S.rejectMode = false;
  const mine = ep.review.mine;
  S.labels = mine ? { verdict: mine.verdict, reasons: [...mine.reasons], outcome: mine.outcome,
                      subtasks: mine.subtasks.map((s) => ({ ...s })), instructions: [...mine.instructions],
                      notes: mine.notes } : emptyLabels();
  S.lastRecord = mine;
  S.labelsReviewer = ep.reviewer;
  S.dirty = false;
  history.replaceState(null, "", `#${id}`);
  showEpisodeHead();
  buildCameras();
  for (const cam of S.cameras) showFrame(cam, nearestIndex(cam.t, S.t));
  buildReasons();
  buildEvents();
  $("skills").textContent = "skills: " + ep.choices.skills.map((s, i) => `${i + 1} ${s}`).join(" · ");
  staticLayer = null;
  showLabels();
  setSaveState(mine ? "saved" : "none", mine ? `saved r${mine.revision} ${mine.saved_at.slice(11, 19)}` : "not reviewed by you");
  document.querySelectorAll("#episode-list tr").forEach((r) => r.classList.toggle("current", r.dataset.episode === id));
  render();
  loadTimeline(ep);
  loadSuggestions(ep);
}

async function loadTimeline(ep) {
  try {
    Object.assign(ep, await api(`/api/episode/${encodeURIComponent(ep.episode_id)}/timeline`));
  } catch (err) {
    setSaveState($("save-state").dataset.state, `timeline: ${err.message}`);
  }
  ep.timelineLoading = undefined;
  if (S.ep === ep) { staticLayer = null; buildEvents(); render(); }
}

async function loadSuggestions(ep) {
  try {
    ep.suggestions = await api(`/api/episode/${encodeURIComponent(ep.episode_id)}/suggestions`);
  } catch (err) {
    ep.suggestions = { subtasks: [], idle: [], available: false, error: err.message };
  }
  if (S.ep === ep) { staticLayer = null; render(); }
}

function showEpisodeHead() {
  const m = S.ep.metadata;
  $("episode-id").textContent = S.ep.episode_id;
  $("episode-task").textContent = m.task;
  $("episode-cond").textContent = `lighting ${m.lighting} · weight ${m.weight}${m.theme ? " · " + m.theme : ""}`;
  $("episode-instruction").textContent = m.instruction || "";
  const others = Object.entries(S.ep.review.latest).filter(([n]) => n !== reviewer())
    .map(([n, l]) => `${n}: ${l.verdict || "no verdict"}`);
  $("episode-meta").textContent = [`outcome ${m.outcome}${m.outcome_override ? ` (reviewed: ${m.outcome_override})` : ""}`, `QA ${m.qa}`, `operator ${m.operator}`, `station ${m.station}`,
    `${(m.duration_s || 0).toFixed(1)} s`, `review: ${S.ep.review.verdict}`, ...others].join(" · ");
}

function buildCameras() {
  const box = $("cameras");
  box.replaceChildren();
  box.style.setProperty("--columns", Math.min(S.ep.cameras.length, 4) || 1);
  S.cameras = S.ep.cameras.map((c) => {
    const figure = document.createElement("figure");
    figure.className = "camera";
    const img = document.createElement("img");
    img.id = `cam-${c.name}`;
    img.alt = c.name;
    img.dataset.index = "-1";
    const caption = document.createElement("figcaption");
    caption.textContent = c.name;
    figure.append(img, caption);
    box.append(figure);
    const cam = { name: c.name, t: Float64Array.from(c.t), img, caption, shown: -1, wanted: -1, loading: false };
    img.addEventListener("load", () => frameArrived(cam));
    img.addEventListener("error", () => { cam.loading = false; });
    return cam;
  });
}

function nearestIndex(stamps, t) {
  let lo = 0, hi = stamps.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (stamps[mid] < t) lo = mid + 1; else hi = mid;
  }
  return lo > 0 && t - stamps[lo - 1] <= stamps[lo] - t ? lo - 1 : lo;
}

// One request in flight per camera: while a frame loads, only the newest wanted index is remembered,
// so fast playback or scrubbing shows fewer frames instead of queueing stale ones.
function showFrame(cam, index) {
  cam.wanted = index;
  if (cam.loading || cam.shown === index || index < 0) return;
  cam.loading = true;
  cam.requested = index;
  cam.img.src = `/api/episode/${encodeURIComponent(S.ep.episode_id)}/frame/${encodeURIComponent(cam.name)}/${index}.jpg`;
}

function frameArrived(cam) {
  cam.loading = false;
  cam.shown = cam.requested;
  cam.img.dataset.index = String(cam.shown);
  cam.caption.textContent = `${cam.name} · frame ${cam.shown} · ${cam.t[cam.shown].toFixed(3)} s`;
  if (cam.wanted !== cam.shown) showFrame(cam, cam.wanted);
  // For measurements: when every camera first showed a frame, in ms since the page was opened.
  if (S.firstFrameMs === undefined && S.cameras.every((c) => c.shown >= 0)) S.firstFrameMs = performance.now();
}

// -- playback ------------------------------------------------------------------------------------------
let lastTick = null;

function play() {
  if (!S.ep) return;
  if (S.t >= S.ep.t1) S.t = S.ep.t0;
  S.playing = true;
  lastTick = null;
  $("btn-play").firstChild.textContent = "Pause ";
  requestAnimationFrame(tick);
}

function pause() {
  S.playing = false;
  $("btn-play").firstChild.textContent = "Play ";
}

function tick(now) {
  if (!S.playing) return;
  if (lastTick !== null) S.t = Math.min(S.ep.t1, S.t + ((now - lastTick) / 1000) * S.speed);
  lastTick = now;
  if (S.t >= S.ep.t1) pause();
  render();
  if (S.playing) requestAnimationFrame(tick);
}

function seek(t) {
  if (!S.ep) return;
  S.t = Math.max(S.ep.t0, Math.min(S.ep.t1, t));
  render();
}

function stepFrame(direction) {
  if (!S.ep || !S.cameras.length) return;
  pause();
  const stamps = S.cameras[0].t;
  const i = nearestIndex(stamps, S.t);
  seek(stamps[Math.max(0, Math.min(stamps.length - 1, i + direction))]);
}

function setSpeed(speed) {
  S.speed = speed;
  $("speed").value = String(speed);
}

// -- timeline ------------------------------------------------------------------------------------------
let staticLayer = null;
let lanes = [];

function layoutLanes() {
  lanes = [{ kind: "ruler", h: 18 }];
  for (const lane of (S.ep.joints && S.ep.joints.lanes) || []) lanes.push({ kind: "series", lane, h: lane.indices.length <= 2 ? 36 : 46 });
  lanes.push({ kind: "control", h: 16, name: "control" }, { kind: "events", h: 16, name: "QA" },
             { kind: "suggestions", h: 20, name: "suggested" }, { kind: "labels", h: 26, name: "subtasks" });
  let y = 0;
  for (const l of lanes) { l.y = y; y += l.h + 4; }
  return y;
}

function xOf(t, width) { return LEFT + ((t - S.ep.t0) / Math.max(1e-9, S.ep.t1 - S.ep.t0)) * (width - LEFT - RIGHT); }
function tOf(x, width) { return S.ep.t0 + ((x - LEFT) / (width - LEFT - RIGHT)) * (S.ep.t1 - S.ep.t0); }

function drawStatic(width, height, dpr) {
  const canvas = document.createElement("canvas");
  canvas.width = width * dpr; canvas.height = height * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.font = "11px system-ui, sans-serif";
  for (const l of lanes) {
    if (l.kind === "ruler") drawRuler(g, l, width);
    else if (l.kind === "series") drawSeries(g, l, width);
    else if (l.kind === "control") drawBlocks(g, l, width, S.ep.control.map((c) => ({ ...c, name: c.source, color: SOURCE_COLORS[c.source] || "#888" })));
    else if (l.kind === "events") drawEvents(g, l, width);
    else if (l.kind === "suggestions") drawSuggestions(g, l, width);
    if (l.name) { g.fillStyle = "#98a2b3"; g.fillText(l.name, 4, l.y + l.h / 2 + 4); }
  }
  return canvas;
}

function drawRuler(g, l, width) {
  const span = S.ep.t1 - S.ep.t0;
  const step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300].find((s) => span / s <= 12) || 600;
  g.fillStyle = "#98a2b3"; g.strokeStyle = "#2c323c";
  for (let t = Math.ceil(S.ep.t0 / step) * step; t <= S.ep.t1 + 1e-9; t += step) {
    const x = xOf(t, width);
    g.fillRect(x, l.y + 12, 1, 6);
    g.fillText(`${+t.toFixed(2)} s`, x + 2, l.y + 10);
  }
  g.fillText("time (s)", 4, l.y + 12);
}

function laneRange(lane, series) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const j of lane.indices) for (const v of s.v[j]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!isFinite(lo)) return [-1, 1];
  const minSpan = lane.min_span || 0.05; // micro-noise stays flat instead of filling the lane
  if (hi - lo < minSpan) { const mid = (hi + lo) / 2; lo = mid - minSpan / 2; hi = mid + minSpan / 2; }
  return [lo, hi];
}

function drawSeries(g, l, width) {
  const joints = S.ep.joints;
  const series = [joints.measured, joints.commanded].filter(Boolean);
  const [lo, hi] = laneRange(l.lane, series);
  const y = (v) => l.y + l.h - 2 - ((v - lo) / (hi - lo)) * (l.h - 4);
  g.fillStyle = "#1a1e25"; g.fillRect(LEFT, l.y, width - LEFT - RIGHT, l.h);
  g.fillStyle = "#98a2b3";
  g.fillText(l.lane.unit ? `${l.lane.name} (${l.lane.unit})` : l.lane.name, 4, l.y + 11, LEFT - 8);
  g.textAlign = "right"; // the lane's range, beside its top and bottom edges
  g.fillText(hi.toFixed(l.lane.unit === "m" ? 3 : 2), LEFT - 4, l.y + 22);
  g.fillText(lo.toFixed(l.lane.unit === "m" ? 3 : 2), LEFT - 4, l.y + l.h);
  g.textAlign = "left";
  l.lane.indices.forEach((j, k) => {
    series.forEach((s, which) => {
      g.strokeStyle = LANE_COLORS[k % LANE_COLORS.length];
      g.globalAlpha = which === 0 ? 1 : 0.7;
      g.setLineDash(which === 0 ? [] : [4, 3]);
      g.lineWidth = which === 0 ? 1.3 : 1;
      g.beginPath();
      let pen = false;
      s.t.forEach((t, i) => {
        const v = s.v[j][i];
        if (v === null) { pen = false; return; }
        if (pen) g.lineTo(xOf(t, width), y(v)); else g.moveTo(xOf(t, width), y(v));
        pen = true;
      });
      g.stroke();
    });
  });
  g.globalAlpha = 1; g.setLineDash([]);
}

function drawBlocks(g, l, width, blocks) {
  for (const b of blocks) {
    const x0 = xOf(b.start_t, width), x1 = Math.max(x0 + 2, xOf(b.end_t, width));
    g.fillStyle = b.color; g.globalAlpha = b.alpha || 0.85;
    g.fillRect(x0, l.y, x1 - x0, l.h);
    g.globalAlpha = 1;
    if (x1 - x0 > 30) { g.fillStyle = "#fff"; g.fillText(b.name, x0 + 3, l.y + l.h / 2 + 4, x1 - x0 - 6); }
  }
}

function drawEvents(g, l, width) {
  for (const e of S.ep.events) {
    const x0 = xOf(e.start_t, width), x1 = Math.max(x0 + 3, xOf(e.end_t, width));
    g.fillStyle = EVENT_COLORS[e.kind] || "#ff8a80";
    g.fillRect(x0, l.y, x1 - x0, l.h);
  }
}

function skillColor(name) {
  const i = S.ep.choices.skills.indexOf(name);
  return SKILL_COLORS[(i < 0 ? SKILL_COLORS.length - 1 : i) % SKILL_COLORS.length];
}

function drawSuggestions(g, l, width) {
  for (const [a, b] of S.ep.suggestions.idle) {
    g.fillStyle = "#555d6b"; g.globalAlpha = 0.8;
    g.fillRect(xOf(a, width), l.y, xOf(b, width) - xOf(a, width), l.h);
  }
  g.globalAlpha = 1;
  drawBlocks(g, l, width, S.ep.suggestions.subtasks.map((s) => ({ ...s, color: skillColor(s.name), alpha: 0.45 })));
}

function drawTimeline() {
  const canvas = $("timeline");
  if (!S.ep) return;
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = layoutLanes();
  if (!staticLayer || staticLayer.cssWidth !== width) {
    canvas.style.height = `${height}px`;
    canvas.width = width * dpr; canvas.height = height * dpr;
    staticLayer = drawStatic(width, height, dpr);
    staticLayer.cssWidth = width;
  }
  const g = canvas.getContext("2d");
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.drawImage(staticLayer, 0, 0);
  g.scale(dpr, dpr);
  g.font = "11px system-ui, sans-serif";
  const l = lanes.find((x) => x.kind === "labels");
  g.fillStyle = "#98a2b3"; g.fillText("subtasks", 4, l.y + l.h / 2 + 4);
  drawBlocks(g, l, width, S.labels.subtasks.map((s) => ({ ...s, color: skillColor(s.name) })));
  if (S.pendingMark !== null) {
    g.strokeStyle = "#fff"; g.setLineDash([3, 3]);
    g.beginPath(); g.moveTo(xOf(S.pendingMark, width), l.y); g.lineTo(xOf(S.pendingMark, width), l.y + l.h); g.stroke();
    g.setLineDash([]);
  }
  const x = xOf(S.t, width);
  g.fillStyle = "#fff"; g.fillRect(x - 0.5, 0, 1.5, height);
}

function render() {
  if (!S.ep) return;
  for (const cam of S.cameras) showFrame(cam, nearestIndex(cam.t, S.t));
  $("time").textContent = `${S.t.toFixed(2)} / ${S.ep.t1.toFixed(2)} s`;
  $("time").dataset.t = String(S.t);
  const mine = segmentAt(S.t), suggested = S.ep.suggestions.subtasks.find((s) => s.start_t <= S.t && S.t <= s.end_t);
  const control = S.ep.control.find((c) => c.start_t <= S.t && S.t <= c.end_t);
  $("under-playhead").textContent = [control && `control: ${control.source}`, mine && `subtask: ${mine.name}`,
    suggested && `suggested: ${suggested.name}`].filter(Boolean).join(" · ");
  drawTimeline();
}

// -- labels --------------------------------------------------------------------------------------------
function changed() {
  S.dirty = true;
  setSaveState("dirty", "unsaved changes");
  showLabels();
  render();
}

function segmentAt(t) {
  const hits = S.labels.subtasks.filter((s) => s.start_t <= t && t <= s.end_t);
  return hits.length ? hits[hits.length - 1] : null;
}

function sortSegments() { S.labels.subtasks.sort((a, b) => a.start_t - b.start_t); }

function skillAfter(name) {
  const skills = S.ep.choices.skills;
  const i = name == null ? -1 : skills.indexOf(name);
  return skills[Math.min(skills.length - 1, i + 1)] || "segment";
}

function markBoundary() {
  const t = S.t, segments = S.labels.subtasks;
  if (S.pendingMark !== null) {
    const a = Math.min(S.pendingMark, t), b = Math.max(S.pendingMark, t);
    const overlaps = segments.some((s) => s.start_t < b && a < s.end_t);
    if (b - a >= 0.02 && !overlaps) {
      const before = segments.filter((s) => s.end_t <= a + 1e-9).pop();
      segments.push({ name: skillAfter(before ? before.name : null), start_t: a, end_t: b });
      sortSegments();
      S.pendingMark = t;
      return changed();
    }
  }
  const inside = segments.find((s) => s.start_t < t && t < s.end_t);
  if (inside) {
    segments.push({ name: skillAfter(inside.name), start_t: t, end_t: inside.end_t });
    inside.end_t = t;
    sortSegments();
    S.pendingMark = null;
    return changed();
  }
  S.pendingMark = t;
  render();
}

function nameSegment(n) {
  const skill = S.ep.choices.skills[n - 1];
  const segment = segmentAt(S.t);
  if (!skill || !segment) return;
  segment.name = skill;
  changed();
}

function deleteSegment() {
  const segment = segmentAt(S.t);
  if (segment) {
    S.labels.subtasks.splice(S.labels.subtasks.indexOf(segment), 1);
    return changed();
  }
  S.pendingMark = null;
  render();
}

function moveBoundary() {
  const segments = S.labels.subtasks;
  const bounds = segments.flatMap((s) => [s.start_t, s.end_t]);
  if (!bounds.length) return;
  const nearest = bounds.reduce((a, b) => (Math.abs(b - S.t) < Math.abs(a - S.t) ? b : a));
  const moved = segments.map((s) => ({
    ...s, start_t: Math.abs(s.start_t - nearest) < 1e-6 ? S.t : s.start_t, end_t: Math.abs(s.end_t - nearest) < 1e-6 ? S.t : s.end_t,
  }));
  if (moved.some((s) => s.end_t <= s.start_t)) return; // a boundary cannot pass its segment's other end
  S.labels.subtasks = moved;
  sortSegments();
  changed();
}

function acceptSuggestions() {
  const segments = S.labels.subtasks;
  const fresh = S.ep.suggestions.subtasks.filter((s) => !segments.some((m) => m.start_t < s.end_t && s.start_t < m.end_t));
  if (!fresh.length) return setSaveState(S.dirty ? "dirty" : $("save-state").dataset.state, "no suggestion to add");
  segments.push(...fresh.map((s) => ({ ...s })));
  sortSegments();
  changed();
}

function addInstruction(text) {
  text = text.trim();
  if (!text || S.labels.instructions.includes(text)) return;
  S.labels.instructions.push(text);
  changed();
}

function cycleOutcome() {
  const order = [null, "success", "failure"];
  S.labels.outcome = order[(order.indexOf(S.labels.outcome) + 1) % order.length];
  changed();
}

function toggleReason(n) {
  const reason = S.ep.choices.reasons[n - 1];
  if (!reason) return;
  const i = S.labels.reasons.indexOf(reason);
  if (i >= 0) S.labels.reasons.splice(i, 1); else S.labels.reasons.push(reason);
  changed();
}

function accept() {
  S.rejectMode = false;
  S.labels.verdict = "accept";
  S.labels.reasons = [];
  changed();
  return save();
}

function startReject() {
  S.rejectVerdictBefore = S.labels.verdict;
  S.rejectMode = true;
  S.labels.verdict = "reject";
  changed();
}

function cancelReject() {
  S.rejectMode = false;
  S.labels.verdict = S.rejectVerdictBefore;
  changed();
}

async function save() {
  if (!S.ep) return;
  const id = S.ep.episode_id;
  const body = { reviewer: S.labelsReviewer || reviewer(), ...S.labels, subtasks: S.labels.subtasks.map(({ name, start_t, end_t }) => ({ name, start_t, end_t })) };
  setSaveState("saving", "saving…");
  try {
    const reply = await api(`/api/episode/${encodeURIComponent(id)}/labels`, { method: "POST", body: JSON.stringify(body) });
    S.lastRecord = reply.record;
    if (S.ep && S.ep.episode_id === id) {
      S.dirty = false;
      S.rejectMode = false;
      S.ep.review.verdict = reply.review.verdict;
      S.ep.metadata.outcome_override = reply.review.outcome_override;
      setSaveState("saved", `saved r${reply.record.revision} ${reply.record.saved_at.slice(11, 19)}` +
                   (reply.catalogue === "recorded" ? "" : ` · ${reply.catalogue}`));
      showLabels();
      showEpisodeHead();
    }
    loadList().catch(() => {});
    return reply;
  } catch (err) {
    setSaveState("error", `not saved: ${err.message}`);
  }
}

function setSaveState(state, text) {
  const el = $("save-state");
  el.dataset.state = state;
  el.textContent = { none: "not reviewed", dirty: "unsaved", saving: "saving", saved: "saved", error: "save failed" }[state] || state;
  $("save-message").textContent = text || "";
}

function showLabels() {
  const L = S.labels;
  $("verdict").textContent = L.verdict ? `verdict: ${L.verdict}${S.rejectMode ? " (pick reasons 1–9, Enter saves)" : ""}` : "no verdict";
  $("verdict").dataset.verdict = L.verdict || "";
  $("btn-accept").classList.toggle("chosen", L.verdict === "accept");
  $("btn-reject").classList.toggle("chosen", L.verdict === "reject");
  $("reasons").classList.toggle("active", S.rejectMode);
  document.querySelectorAll("#reasons input").forEach((box) => { box.checked = L.reasons.includes(box.value); });
  $("outcome").value = L.outcome || "";
  if (document.activeElement !== $("notes")) $("notes").value = L.notes;
  $("instructions").replaceChildren(...L.instructions.map((text, i) => {
    const li = document.createElement("li");
    li.textContent = text + " ";
    const remove = document.createElement("button");
    remove.textContent = "×";
    remove.title = "remove this phrasing";
    remove.addEventListener("click", () => { L.instructions.splice(i, 1); changed(); });
    li.append(remove);
    return li;
  }));
  $("subtasks").tBodies[0].replaceChildren(...L.subtasks.map((s, i) => {
    const row = document.createElement("tr");
    const select = document.createElement("select");
    [...new Set([...S.ep.choices.skills, s.name])].forEach((k) => select.add(new Option(k, k)));
    select.value = s.name;
    select.addEventListener("change", () => { s.name = select.value; changed(); });
    const remove = document.createElement("button");
    remove.textContent = "×";
    remove.addEventListener("click", () => { L.subtasks.splice(i, 1); changed(); });
    const cells = [String(i + 1), select, s.start_t.toFixed(2), s.end_t.toFixed(2), remove].map((c) => {
      const td = document.createElement("td");
      td.append(c);
      return td;
    });
    cells[2].addEventListener("click", () => seek(s.start_t));
    row.append(...cells);
    return row;
  }));
}

function buildReasons() {
  const box = $("reasons");
  box.querySelectorAll("label").forEach((l) => l.remove());
  S.ep.choices.reasons.forEach((reason, i) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = reason;
    input.addEventListener("change", () => {
      const at = S.labels.reasons.indexOf(reason);
      if (input.checked && at < 0) S.labels.reasons.push(reason);
      if (!input.checked && at >= 0) S.labels.reasons.splice(at, 1);
      changed();
    });
    label.append(input, ` ${i < 9 ? i + 1 + " " : ""}${reason}`);
    box.append(label);
  });
}

function buildEvents() {
  const items = S.ep.events.map((e) => {
    const li = document.createElement("li");
    li.textContent = `${e.start_t.toFixed(2)} s · ${e.kind} · ${e.message}`;
    li.className = `event-${e.kind}`;
    li.addEventListener("click", () => seek(e.start_t));
    return li;
  });
  for (const problem of S.ep.metadata.qa_problems || []) {
    const li = document.createElement("li");
    li.textContent = `QA: ${problem}`;
    items.push(li);
  }
  if (!items.length) items.push(Object.assign(document.createElement("li"), { textContent: "none", className: "meta" }));
  $("events").replaceChildren(...items);
}

// -- keyboard ------------------------------------------------------------------------------------------
function typingIn(el) { return el && (el.tagName === "INPUT" && el.type !== "checkbox" || el.tagName === "TEXTAREA"); }

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") { e.preventDefault(); save(); return; }
  if (e.key === "Escape") {
    if (!$("help").hidden) $("help").hidden = true;
    else if (typingIn(document.activeElement)) document.activeElement.blur();
    else if (S.rejectMode) cancelReject();
    return;
  }
  if (typingIn(document.activeElement) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "?") { $("help").hidden = !$("help").hidden; return; }
  if (!S.ep) { if (e.key.toLowerCase() === "n") nextEpisode(); return; }
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (S.rejectMode && /^[1-9]$/.test(key)) { toggleReason(+key); return; }
  if (S.rejectMode && key === "Enter") { e.preventDefault(); save(); return; }
  const actions = {
    " ": () => (S.playing ? pause() : play()),
    ArrowLeft: () => (e.shiftKey ? seek(S.t - 1) : stepFrame(-1)), ArrowRight: () => (e.shiftKey ? seek(S.t + 1) : stepFrame(1)),
    Home: () => seek(S.ep.t0), End: () => seek(S.ep.t1),
    "[": () => setSpeed(SPEEDS[Math.max(0, SPEEDS.indexOf(S.speed) - 1)]),
    "]": () => setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS.indexOf(S.speed) + 1)]),
    b: markBoundary, m: moveBoundary, x: deleteSegment, g: acceptSuggestions,
    i: () => $("instruction-input").focus(), t: () => $("notes").focus(), o: cycleOutcome,
    a: accept, r: () => (S.rejectMode ? save() : startReject()), s: save, n: nextEpisode,
  };
  if (/^[1-9]$/.test(key)) { e.preventDefault(); nameSegment(+key); return; }
  if (actions[key]) { e.preventDefault(); actions[key](); }
});

// -- wiring --------------------------------------------------------------------------------------------
function wire() {
  $("btn-play").addEventListener("click", () => (S.playing ? pause() : play()));
  $("btn-back").addEventListener("click", () => stepFrame(-1));
  $("btn-forward").addEventListener("click", () => stepFrame(1));
  $("speed").addEventListener("change", () => setSpeed(+$("speed").value));
  $("btn-accept").addEventListener("click", accept);
  $("btn-reject").addEventListener("click", () => (S.rejectMode ? save() : startReject()));
  $("btn-save").addEventListener("click", save);
  $("btn-next").addEventListener("click", nextEpisode);
  $("btn-help").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
  $("help").addEventListener("click", (e) => { if (e.target === $("help")) $("help").hidden = true; });
  // A clicked button gives the focus back, so Space and Enter stay shortcuts instead of clicking it again.
  document.addEventListener("click", (e) => { const button = e.target.closest("button"); if (button) button.blur(); });
  $("outcome").addEventListener("change", () => { S.labels.outcome = $("outcome").value || null; changed(); });
  $("notes").addEventListener("input", () => { S.labels.notes = $("notes").value; S.dirty = true; setSaveState("dirty", "unsaved changes"); });
  $("instruction-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { addInstruction(e.target.value); e.target.value = ""; }
  });
  $("reviewer").addEventListener("change", () => {
    if (S.ep && reviewer() === S.labelsReviewer) return;
    loadList();
    if (S.ep) openEpisode(S.ep.episode_id);
  });
  document.querySelectorAll("#filters select").forEach((el) => el.addEventListener("change", () =>
    loadList().catch((err) => setSaveState($("save-state").dataset.state, `list: ${err.message}`))));
  const canvas = $("timeline");
  let dragging = false;
  const scrub = (e) => seek(tOf(e.offsetX, canvas.clientWidth));
  canvas.addEventListener("mousedown", (e) => { dragging = true; pause(); scrub(e); });
  canvas.addEventListener("mousemove", (e) => { if (dragging) scrub(e); });
  window.addEventListener("mouseup", () => { dragging = false; });
  // The take comes from the URL navigated to, not location.hash: an open that finishes between the navigation
  // and this event writes its own take into the URL, and the take asked for last must win.
  window.addEventListener("hashchange", (e) => {
    const wanted = decodeURIComponent(new URL(e.newURL).hash.slice(1));
    if (wanted && (!S.ep || wanted !== S.ep.episode_id)) openEpisode(wanted).catch((err) => setSaveState("error", err.message));
  });
  window.addEventListener("resize", () => { staticLayer = null; render(); });
  window.addEventListener("beforeunload", (e) => { if (S.dirty) { e.preventDefault(); e.returnValue = ""; } });
  $("shortcuts").replaceChildren(...SHORTCUTS.map(([keys, what]) => {
    const row = document.createElement("tr");
    row.innerHTML = "<th></th><td></td>";
    row.firstChild.textContent = keys;
    row.lastChild.textContent = what;
    return row;
  }));
}

async function start() {
  wire();
  try {
    $("reviewer").value = document.querySelector('meta[name="collector-reviewer"]').content;
    const wanted = decodeURIComponent(location.hash.slice(1));
    // everything loads side by side; the page starts on the queue's first take
    await Promise.all([loadInfo(), loadList(), wanted ? openEpisode(wanted) : nextEpisode()]);
    document.body.dataset.ready = "1";
  } catch (err) {
    setSaveState("error", err.message);
  }
}

start();
