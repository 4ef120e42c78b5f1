// The floor manager's page: renders each snapshot the server streams (Server-Sent Events).
// Every name shown comes from the stations' reports, so the page builds its elements with textContent,
// never HTML from the data.
"use strict";

const $ = (id) => document.getElementById(id);
const RATE_GROUPS = ["station", "operator", "task", "lighting", "weight"];
let rateGroup = "station";
let floor = null;
let events = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

const percent = (rate) => (rate == null ? "–" : `${Math.round(rate * 100)}%`);

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

function cellText(cell) {
  const values = Object.values(cell || {});
  return values.length ? values.join(" / ") : "–";
}

function stationCard(s) {
  const rows = [
    ["plan", s.plan || "–"], ["take", s.take || "–"], ["cell", cellText(s.cell)], ["operator", s.operator || "–"],
    ["disk free", bytes(s.disk_free_bytes)],
    ["uploads", s.upload_backlog == null ? "–" : `${s.upload_backlog} waiting (${bytes(s.upload_backlog_bytes)})`],
  ];
  if (!s.online) rows.push(["last seen", s.silent_s == null ? "never" : `${Math.round(s.silent_s)} s ago`]);
  const list = el("dl");
  for (const [name, value] of rows) list.append(el("dt", {}, name), el("dd", { "data-field": name }, value));
  return el("div", { class: `station ${s.activity}`, id: `station-${s.station}`, "data-station": s.station },
    el("span", { class: "activity" }, s.activity), el("div", { class: "name" }, s.station),
    el("div", { class: "meta" }, [s.robot, s.host].filter(Boolean).join(" · ")), list);
}

function renderStations(stations) {
  if (!stations.length) return;
  $("stations").replaceChildren(...stations.map(stationCard));
}

function renderSparkline(counts) {
  const most = Math.max(1, ...counts);
  const width = 10 * counts.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "bars");
  svg.setAttribute("viewBox", `0 0 ${width} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  counts.forEach((count, i) => {
    const bar = document.createElementNS(svg.namespaceURI, "rect");
    const height = Math.max(1, (38 * count) / most); // an hour without takes is a line, not a gap
    bar.setAttribute("x", String(10 * i + 1));
    bar.setAttribute("width", "8");
    bar.setAttribute("y", String(40 - height));
    bar.setAttribute("height", String(height));
    bar.setAttribute("class", count === 0 ? "none" : i === counts.length - 1 ? "last" : "");
    const tip = document.createElementNS(svg.namespaceURI, "title");
    tip.textContent = `${count} takes, ${counts.length - i} h ago`;
    bar.append(tip);
    svg.append(bar);
  });
  $("sparkline").replaceChildren(svg);
  $("sparkline").dataset.counts = counts.join(",");
  text("sparkline-caption", `last ${counts.length} h, one bar an hour (max ${Math.max(0, ...counts)})`);
}

function renderPlans(plans) {
  if (!plans.length) return;
  const table = el("table", { id: "plans-table" },
    el("tr", {}, el("th", {}, "plan"), el("th", {}, "good / wanted"), el("th", {}, ""), el("th", {}, "claimed")));
  for (const p of plans) {
    const fill = el("div");
    fill.style.width = `${Math.round(100 * (p.fraction || 0))}%`;
    table.append(el("tr", { "data-plan": p.plan }, el("td", {}, p.plan),
      el("td", {}, `${p.good} / ${p.wanted == null ? "?" : p.wanted}`),
      el("td", {}, el("div", { class: "bar" }, fill)), el("td", {}, p.claimed || 0)));
  }
  $("plans").replaceChildren(table);
}

// The tabs are made once: rebuilt with every snapshot, a click landing during a rebuild would be lost.
function makeRateTabs() {
  $("rate-tabs").replaceChildren(...RATE_GROUPS.map((group) => {
    const button = el("button", { "data-group": group }, group);
    button.addEventListener("click", () => { rateGroup = group; if (floor) renderRates(floor.rates); });
    return button;
  }));
}

function renderRates(rates) {
  for (const button of $("rate-tabs").children) button.classList.toggle("selected", button.dataset.group === rateGroup);
  const groups = (rates || {})[rateGroup] || [];
  const table = el("table", { id: "rates-table" }, el("tr", {}, el("th", {}, rateGroup), el("th", {}, "takes"),
    el("th", {}, "success"), el("th", {}, "QA failed")));
  for (const g of groups) {
    table.append(el("tr", { "data-value": g.value }, el("td", {}, g.value || "(none)"), el("td", {}, g.takes),
      el("td", {}, percent(g.success_rate)),
      el("td", { class: g.qa_failure_rate ? "bad" : "" }, percent(g.qa_failure_rate))));
  }
  $("rates").replaceChildren(groups.length ? table : el("p", { class: "hint" }, "no takes in this window"));
}

function text(id, value) { $(id).textContent = value == null ? "" : String(value); }

function render(snapshot) {
  floor = snapshot;
  text("catalog", snapshot.catalog || "");
  const stations = snapshot.stations || [];
  text("online", `${snapshot.online ?? 0} of ${stations.length} online`);
  $("problem").hidden = !snapshot.error;
  text("problem", snapshot.error ? `catalogue: ${snapshot.error}` : "");
  renderStations(stations);
  text("takes-last-hour", snapshot.takes_last_hour ?? "–");
  renderSparkline(snapshot.takes_per_hour || []);
  renderPlans(snapshot.plans || []);
  text("rates-window", snapshot.hours ? `(takes of the last ${snapshot.hours} h)` : "");
  renderRates(snapshot.rates);
  document.body.dataset.version = String(snapshot.version);
}

// EventSource reconnects by itself while the server is away; when the server answers with an error
// instead (a restart with a new token) it gives up, so the page asks again itself and says why.
async function explainRefusal() {
  try {
    const reply = await fetch("/api/floor", { cache: "no-store" });
    if (reply.status === 401) return "this page is not let in any more: open the URL `collector fleet` printed (or log in again)";
    if (!reply.ok) return `the server answered ${reply.status}`;
  } catch (err) {
    return "the server cannot be reached";
  }
  return "";
}

function connect() {
  events = new EventSource("/api/events");
  events.onopen = () => text("connection", "live");
  events.onmessage = (event) => render(JSON.parse(event.data));
  events.onerror = async () => {
    text("connection", "reconnecting…");
    if (events.readyState !== EventSource.CLOSED) return;
    const why = await explainRefusal();
    if (why) text("connection", `reconnecting… (${why})`);
    setTimeout(connect, 2000);
  };
}

makeRateTabs();
connect();
