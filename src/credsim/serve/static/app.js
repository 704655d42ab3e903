// credsim lab: the page. Plain JavaScript, no build step. Every string from the server or
// the user is put on the page with textContent (el() below), never as HTML.
"use strict";

const state = {
  presets: [], preset: null, levers: [], base: {}, overrides: {}, limits: {},
  job: null, share: null, results: null, source: null, compareJob: null, running: false,
  rows: [], columns: {}, validateTimer: null,
};

// ------------------------------------------------------------------ helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const $ = (id) => document.getElementById(id);

function num(v, digits = 4) {
  if (v === null || v === undefined) return "n/a";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return v.toExponential(2);
  return v.toLocaleString("en", { maximumSignificantDigits: digits });
}
function pct(v) { return v === null || v === undefined ? "n/a" : (100 * v).toFixed(1) + " %"; }
function duration(s) {
  if (s === undefined || s === null) return "";
  if (s < 60) return Math.round(s) + " s";
  if (s >= 3600) return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.body !== undefined) {
    init.method = options.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || data.detail?.[0]?.msg || response.statusText);
  return data;
}
function shareQuery() { return state.share ? "?share=" + encodeURIComponent(state.share) : ""; }
function jobPath(id, tail = "") {
  return "/api/jobs/" + encodeURIComponent(id) + tail + shareQuery();
}

const LAYOUT = {
  margin: { l: 55, r: 10, t: 36, b: 40 }, height: 300, font: { size: 11 },
  legend: { orientation: "h", y: -0.22 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
};
const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };
function plot(id, traces, layout) {
  if (!window.Plotly) return;
  Plotly.react($(id), traces, { ...LAYOUT, ...layout }, CONFIG);
}

// ------------------------------------------------------------------ tabs
function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== "panel-" + name;
  if (name === "charts" || name === "impact" || name === "compare") window.dispatchEvent(new Event("resize"));
}

// ------------------------------------------------------------------ presets
async function loadPresets() {
  state.presets = await api("/api/presets");
  const box = $("presets");
  box.replaceChildren();
  for (const p of state.presets) {
    box.append(el("button", { type: "button", class: "card", "data-preset": p.name,
      title: p.description, onclick: () => choosePreset(p.name) },
      el("b", { text: p.name }), el("span", { class: "line", text: p.description })));
  }
}

async function choosePreset(name, overrides = {}) {
  const data = await api("/api/levers/" + encodeURIComponent(name));
  state.preset = name;
  state.levers = data.levers;
  state.limits = data.limits;
  state.base = Object.fromEntries(data.levers.map((l) => [l.key, l.value]));
  state.overrides = {};
  $("replicates").max = String(data.limits.max_replicates);
  for (const c of document.querySelectorAll(".card")) c.classList.toggle("chosen", c.dataset.preset === name);
  $("preset-name").textContent = "(" + name + ")";
  const chosen = state.presets.find((p) => p.name === name);
  $("preset-about").replaceChildren(el("b", { text: name + ": " }), chosen ? chosen.description : "",
    el("span", { class: "sources", text: chosen ? " " + chosen.sources : "" }));
  // A run in the browser starts small: people and days from the server's limits.
  const start = { "run.people": Math.min(20000, data.limits.max_people), "run.days": Math.min(365, data.limits.max_days) };
  Object.assign(state.overrides, start, overrides);
  renderLevers();
  renderChangeOptions();
  validate();
  showEstimate();
}

// ------------------------------------------------------------------ levers
const GROUP_NAMES = { run: "Run", demography: "Demography: decades", society: "Society", system: "System",
  safeguards: "Safeguards", threats: "Threats", adaptation: "Adaptation" };
const YEAR = 365.25;  // days, as demography counts them
const MAX_YEARS = 50;  // the schema's longest run (run.days up to 18,263)

function currentValue(lever) {
  return lever.key in state.overrides ? state.overrides[lever.key] : lever.value;
}

function renderLevers() {
  const box = $("levers");
  box.replaceChildren();
  const groups = {};
  for (const l of state.levers) (groups[l.group] ||= []).push(l);
  for (const [group, levers] of Object.entries(groups)) {
    const details = el("details", { class: "group", "data-group": group,
      open: ["run", "demography", "system", "safeguards", "threats"].includes(group) || null });
    details.append(el("summary", { text: GROUP_NAMES[group] || group }));
    const common = levers.filter((l) => l.common);
    for (const l of common) details.append(leverControl(l));
    if (group === "demography") details.append(yearsControl());
    const rest = levers.filter((l) => !l.common);
    if (rest.length) {
      const more = el("details", { class: "more" }, el("summary", { text: `more (${rest.length})` }));
      let section = null;
      for (const l of rest) {
        const s = l.key.split(".").slice(0, -1).join(".");
        if (s !== section) { more.append(el("div", { class: "section-name", text: s })); section = s; }
        more.append(leverControl(l));
      }
      details.append(more);
    }
    box.append(details);
  }
}

function sliderPosition(lever, v) {
  const s = lever.slider;
  if (s.log) return Math.log10(Math.max(v, s.min) / s.min) / Math.log10(s.max / s.min) * 1000;
  return (v - s.min) / (s.max - s.min) * 1000;
}
function sliderValue(lever, pos) {
  const s = lever.slider;
  let v = s.log ? s.min * Math.pow(s.max / s.min, pos / 1000) : s.min + (s.max - s.min) * pos / 1000;
  if (lever.integer) v = s.log ? Number(v.toPrecision(2)) : Math.round(v);
  else v = Number(v.toPrecision(3));
  return v;
}

function leverControl(l) {
  const wrap = el("div", { class: "lever", "data-key": l.key });
  const allowed = l.allowed ? "allowed: " + l.allowed : "";
  wrap.append(el("label", { for: "lv-" + l.key },
    el("span", { class: "key", text: l.key }), el("span", { class: "unit", text: l.unit || "" })));
  wrap.append(el("div", { class: "desc", text: [l.description, allowed].filter(Boolean).join(" · ") }));
  const row = el("div", { class: "row" });
  const value = currentValue(l);
  let input;
  if (l.control === "toggle") {
    input = el("input", { type: "checkbox", id: "lv-" + l.key });
    input.checked = !!value;
    input.addEventListener("change", () => setLever(l, input.checked));
  } else if (l.control === "choice") {
    input = el("select", { id: "lv-" + l.key });
    for (const o of l.options) input.append(el("option", { value: o, text: o }));
    input.value = String(value);
    input.addEventListener("change", () => setLever(l, input.value));
  } else if (l.control === "number") {
    input = el("input", { type: "number", id: "lv-" + l.key, step: l.integer ? "1" : "any" });
    input.value = value === null ? "" : String(value);
    if (l.slider) {
      const range = el("input", { type: "range", min: "0", max: "1000", step: "1", "aria-label": l.key });
      range.value = String(sliderPosition(l, Number(value)));
      range.addEventListener("input", () => { const v = sliderValue(l, Number(range.value)); input.value = String(v); setLever(l, v); });
      input.addEventListener("input", () => { range.value = String(sliderPosition(l, Number(input.value))); });
      row.append(range);
    }
    input.addEventListener("change", () => setLever(l, parseNumber(input.value)));
  } else if (l.control === "json") {
    input = el("textarea", { id: "lv-" + l.key, rows: "2" });
    input.value = JSON.stringify(value);
    input.addEventListener("change", () => setLever(l, parseJson(input.value)));
  } else {
    input = el("input", { type: "text", id: "lv-" + l.key });
    input.value = value === null ? "" : String(value);
    input.addEventListener("change", () => setLever(l, input.value));
  }
  row.append(input);
  wrap.append(row, el("div", { class: "msg" }));
  wrap.classList.toggle("changed", l.key in state.overrides && JSON.stringify(state.overrides[l.key]) !== JSON.stringify(l.value));
  return wrap;
}

// The run's length in years, for a run over decades: it sets run.days (years × 365.25,
// rounded). With demography off the run's length is set in days, under Run.
function daysLever() { return state.levers.find((l) => l.key === "run.days"); }
function demographyOn() {
  const lever = state.levers.find((l) => l.key === "demography.enabled");
  return !!(lever && currentValue(lever));
}
function maxYears() {
  const days = daysLever();
  return Math.max(1, Math.min(MAX_YEARS, Math.floor((days ? days.max : MAX_YEARS * YEAR) / YEAR + 0.5)));
}
function yearsOf(days) { return Math.min(maxYears(), Math.max(1, Math.round(days / YEAR))); }

function yearsControl() {
  const wrap = el("div", { class: "lever", id: "years-lever" });
  wrap.append(el("label", { for: "lv-years" }, el("span", { class: "key", text: "run length in years" }),
    el("span", { class: "unit", text: "years" })));
  wrap.append(el("div", { class: "desc", id: "years-desc" }));
  const range = el("input", { type: "range", id: "years-range", min: "1", max: String(maxYears()), step: "1", "aria-label": "run length in years" });
  const input = el("input", { type: "number", id: "lv-years", min: "1", max: String(maxYears()), step: "1" });
  const set = (years) => {
    const y = Math.min(maxYears(), Math.max(1, Math.round(years)));
    range.value = input.value = String(y);
    const days = daysLever();
    if (!days) return;
    setLever(days, Math.round(y * YEAR));
    const box = $("lv-run.days");
    if (box) box.value = String(Math.round(y * YEAR));
  };
  range.addEventListener("input", () => set(Number(range.value)));
  input.addEventListener("change", () => { if (/^[0-9]+$/.test(input.value.trim())) set(Number(input.value)); });
  // A lever's box has a message line, which validation fills (none is ever for years).
  wrap.append(el("div", { class: "row" }, range, input), el("div", { class: "msg" }));
  setTimeout(showYears);
  return wrap;
}

// The years slider follows the days lever and the demography switch.
function showYears() {
  const range = $("years-range"), input = $("lv-years"), days = daysLever();
  if (!range || !days) return;
  const on = demographyOn();
  range.disabled = input.disabled = !on;
  range.value = input.value = String(yearsOf(Number(currentValue(days))));
  $("years-desc").textContent = on
    ? `Sets run.days to years × 365.25: people age, partner, have children and die, and children come of age and enter the systems. Up to ${maxYears()} years on this server, and at most ${num(state.limits.max_person_days)} person-days (people × days).`
    : "Turn demography on to run decades; with it off, the population is fixed and the run's length is set in days, under Run.";
}

// A number as typed; anything else is sent as typed, so the schema's message answers it.
function parseNumber(text) {
  const t = text.trim();
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  return t;
}
function parseJson(text) { try { return JSON.parse(text); } catch { return text; } }

// Person-days per second: the last run's, else about what a 20,000-person year takes on
// a 2-core machine, society built and tables written (7.3 million person-days in 3-4 s).
const TYPICAL_RATE = 2e6;
function showEstimate() {
  const people = Number(currentValue(state.levers.find((l) => l.key === "run.people") || {}));
  const days = Number(currentValue(state.levers.find((l) => l.key === "run.days") || {}));
  if (!(people > 0 && days > 0)) { $("estimate").textContent = ""; return; }
  const rate = state.rate || TYPICAL_RATE;
  const years = demographyOn() ? ` (${num(days / YEAR, 3)} years)` : "";
  const over = state.limits.max_person_days && people * days > state.limits.max_person_days
    ? ` · over this server's ${num(state.limits.max_person_days)} person-days` : "";
  $("estimate").textContent = `${num(people)} people × ${num(days)} days${years}: about ${duration(people * days / rate)}` +
    (state.rate ? " at the last run's speed" : " on a typical 2-core machine") + over;
}

function setLever(lever, value) {
  if (JSON.stringify(value) === JSON.stringify(lever.value)) delete state.overrides[lever.key];
  else state.overrides[lever.key] = value;
  const box = document.querySelector(`.lever[data-key="${CSS.escape(lever.key)}"]`);
  if (box) box.classList.toggle("changed", lever.key in state.overrides);
  clearTimeout(state.validateTimer);
  state.validateTimer = setTimeout(validate, 250);
  if (["run.people", "run.days", "demography.enabled"].includes(lever.key)) showEstimate();
  if (lever.key === "run.days" || lever.key === "demography.enabled") showYears();
}

async function validate() {
  if (!state.preset) return false;
  const r = await api("/api/validate", { body: { preset: state.preset, set: state.overrides } });
  for (const box of document.querySelectorAll(".lever")) {
    const msg = r.errors[box.dataset.key] || "";
    box.classList.toggle("invalid", !!msg);
    box.querySelector(".msg").textContent = msg;
  }
  const shown = Object.entries(r.errors).map(([k, m]) => m);
  $("lever-error").textContent = [r.error, ...shown].filter(Boolean).join("\n");
  $("run").disabled = !r.ok || state.running;
  return r.ok;
}

// ------------------------------------------------------------------ running
async function startRun() {
  $("run-error").textContent = "";
  if (!(await validate())) return;
  try {
    const job = await api("/api/jobs", { body: { kind: "run", preset: state.preset, set: state.overrides } });
    followJob(job.id, job.share);
  } catch (e) { $("run-error").textContent = e.message; }
}

function followJob(id, share, owner = true) {
  listJobs();
  if (state.source) state.source.close();
  state.job = id; state.share = share; state.rows = []; state.columns = {}; state.results = null;
  $("cancel").disabled = !owner;  // a share link reads; only the owner's browser cancels
  state.running = true;
  $("run").disabled = true;
  showShare(id, share);
  showTab("charts");
  drawLive();
  const source = new EventSource(jobPath(id, "/events"));
  state.source = source;
  source.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
  source.addEventListener("end", (e) => { source.close(); onProgress(JSON.parse(e.data)); onEnd(id); });
  source.onerror = () => { /* the browser retries; the end event closes it */ };
}

// The job in the address, so that a reload reconnects to it; the share link beside it.
function showShare(id, share) {
  $("share").value = location.origin + "/?job=" + encodeURIComponent(id) + "&share=" + encodeURIComponent(share);
  history.replaceState(null, "", "/?job=" + encodeURIComponent(id) + "&share=" + encodeURIComponent(share));
}

// A run over decades streams thousands of rows: its charts are redrawn at most once a
// second, a short run's at every event.
function drawSoon() {
  const wait = state.rows.length > 2000 ? 1000 - (Date.now() - (state.drawnAt || 0)) : 0;
  if (wait <= 0) { clearTimeout(state.drawTimer); state.drawTimer = null; state.drawnAt = Date.now(); drawLive(); }
  else if (!state.drawTimer) state.drawTimer = setTimeout(() => { state.drawTimer = null; drawSoon(); }, wait);
}

function onProgress(p) {
  if (p.columns) state.columns = p.columns;
  if (p.rows && p.rows.length) { state.rows.push(...p.rows); drawSoon(); }
  const frac = p.days ? p.done / p.days : 0;
  $("bar").style.width = (100 * frac).toFixed(1) + "%";
  let text = `${p.state}: ${p.phase}`;
  if (p.state === "running" && p.done) {
    const at = p.year ? `year ${p.year} of ${Math.ceil(p.years)} (day ${num(p.done)} of ${num(p.days)})` : `day ${p.done} of ${p.days}`;
    text = `${at} · ${num(Math.round(p.person_days_per_second || 0))} person-days/s · ${duration(p.eta_seconds)} left`;
    if (p.person_days_per_second) state.rate = p.person_days_per_second;
  }
  if (p.state === "queued") text = "queued: waiting for a free worker";
  if (p.state === "finished") text = "reading the results";
  if (p.error) $("run-error").textContent = p.error;
  $("progress-text").textContent = text;
}

async function onEnd(id) {
  listJobs();
  $("cancel").disabled = true;
  state.running = false;
  validate();
  const job = await api(jobPath(id));
  if (job.state === "finished") {
    const years = job.results.demography ? ` (${num(job.days / YEAR, 3)} years)` : "";
    $("progress-text").textContent = `finished: ${num(job.people)} people, ${count(job.days, "day")}${years}`;
    $("bar").style.width = "100%";
    state.results = job.results;
    state.columns = job.results.columns;
    showResults(job);
  } else {
    $("progress-text").textContent = job.state + (job.error ? "" : ": nothing was kept");
    if (job.error) $("run-error").textContent = job.error;
  }
}

async function cancelJob(id) {
  try { await api("/api/jobs/" + encodeURIComponent(id) + "/cancel", { body: {} }); }
  catch (e) { $("run-error").textContent = e.message; }
}

// ------------------------------------------------------------------ charts
function series(rows, col) { return rows.map((r) => r[col]); }
function columnLabel(col) { return (state.columns[col] || {}).label || col; }
function isGateColumn(col) {
  return col.startsWith("gate_") && columnLabel(col).startsWith("gate applied (");
}
function effectOf(gate) {
  const key = `gates.${gate}.effect`;
  return key in state.overrides ? state.overrides[key] : (state.base || {})[key];
}
function count(n, unit) { return `${num(n)} ${unit}${n === 1 ? "" : "s"}`; }
function cumulative(xs) { let s = 0; return xs.map((x) => (s += x || 0)); }

function scoreTraces(rows, cols) {
  const days = series(rows, "day");
  const grades = cols.filter((c) => /^grade_/.test(c));
  const bands = cols.filter((c) => /^band_/.test(c));
  // One grade often holds nearly everyone: lines on a log axis keep the small ones visible.
  if (grades.length) return [grades.map((c) => ({ x: days, y: series(rows, c), name: c.slice(6) })), "adults holding each grade", "people (log scale)"];
  if (bands.length) return [bands.map((c) => ({ x: days, y: series(rows, c), name: c.slice(5) })), "participants in each band", "people (log scale)"];
  if (cols.includes("rating_mean")) return [[{ x: days, y: series(rows, "rating_mean"), name: "mean rating" }], "mean peer rating of adults", "stars"];
  const firms = cols.filter((c) => c === "firms_blacklisted" || c === "firms_red_listed");
  if (firms.length) return [firms.map((c) => ({ x: days, y: series(rows, c), name: columnLabel(c) })), "firms on the black and red lists", "firms"];
  return [[], "no score in this scenario", ""];
}

function drawLive() {
  const rows = state.rows.length ? state.rows : [];
  const cols = rows.length ? Object.keys(rows[0]) : [];
  const days = series(rows, "day");
  const xaxis = { title: { text: "day" } };
  const [st, stTitle, stUnit] = scoreTraces(rows, cols);
  plot("chart-scores", st, { title: { text: "Grades or scores over time" }, xaxis,
    // On a log axis, a label per power of ten only (minor labels crowd the axis).
    yaxis: stUnit.endsWith("(log scale)") ? { title: { text: stUnit }, type: "log", dtick: 1 }
      : { title: { text: stUnit } },
    legend: { orientation: "h", y: -0.3 },
    annotations: rows.length ? [] : [{ text: "Run a scenario: charts update day by day", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] });
  const listed = ["listed", "sanctioned", "sanctioned_wrongful"].filter((c) => cols.includes(c));
  plot("chart-listed", listed.map((c) => ({ x: days, y: series(rows, c), name: columnLabel(c).replace(" on a given day", "") })),
    { title: { text: "People listed and sanctioned" }, xaxis, yaxis: { title: { text: "people" } } });
  // Sanctions only: perks reach the well rated, often by the thousand, and would dwarf them.
  const gates = cols.filter(isGateColumn).filter((c) => effectOf(c.slice(5)) !== "perk");
  plot("chart-gates", gates.map((c) => ({ x: days, y: cumulative(series(rows, c)), name: c.slice(5) })),
    { title: { text: "Sanctions per gate (applications so far)" }, xaxis, yaxis: { title: { text: "applications" } },
      legend: { orientation: "v", x: 1.02, y: 1, font: { size: 10 } }, margin: { l: 55, r: 10, t: 36, b: 40 } });
  drawGroups(rows, cols, days, xaxis);
  drawYears(rows, cols);
}

// Rows by year: a count "on a given day" is summed over the year; anything else (people
// alive, a Gini, a mean) is a standing, taken on the year's last day that has it.
function isFlow(col) { return columnLabel(col).includes("on a given day"); }
function yearly(rows, col) {
  const years = [], values = [];
  const flow = isFlow(col);
  for (const r of rows) {
    const y = Math.floor(r.day / YEAR) + 1;
    if (years[years.length - 1] !== y) { years.push(y); values.push(flow ? 0 : null); }
    const v = r[col];
    if (v === null || v === undefined) continue;
    if (flow) values[values.length - 1] += v; else values[values.length - 1] = v;
  }
  return { x: years, y: values };
}

const LIFE = ["births", "deaths", "came_of_age"];
function drawYears(rows, cols) {
  const on = cols.includes("people_alive");
  $("decades").hidden = !on;
  if (!on) return;
  const xaxis = { title: { text: "year" }, dtick: rows.length > 20 * YEAR ? 5 : 1 };
  const legend = { orientation: "h", y: -0.32 };  // below the axis title
  const alive = ["people_alive", "adults_alive"].filter((c) => cols.includes(c));
  plot("chart-population", alive.map((c) => ({ ...yearly(rows, c), name: columnLabel(c).replace(" at the end of a given day", ""), mode: "lines+markers" })),
    { title: { text: "Population alive at each year's end" }, xaxis, legend, yaxis: { title: { text: "people" }, rangemode: "tozero" } });
  plot("chart-life", LIFE.filter((c) => cols.includes(c)).map((c) => ({ type: "bar", ...yearly(rows, c), name: c.replace(/_/g, " ") })),
    { title: { text: "Births, deaths and coming of age per year" }, barmode: "group", xaxis, legend, yaxis: { title: { text: "people per year" } } });
  const select = $("yearly-column");
  const choices = cols.filter((c) => c !== "day");
  if (select.options.length !== choices.length) {
    const was = select.value;
    select.replaceChildren(...choices.map((c) => el("option", { value: c, text: `${c}: ${columnLabel(c)}` })));
    const gini = choices.find((c) => c.startsWith("gini"));
    select.value = choices.includes(was) ? was : (gini || choices.find((c) => !alive.includes(c) && !LIFE.includes(c)) || choices[0]);
  }
  const col = select.value;
  if (!col) return;
  const unit = (state.columns[col] || {}).unit || "";
  plot("chart-yearly", [{ ...yearly(rows, col), name: col, mode: "lines+markers" }],
    { title: { text: isFlow(col) ? columnLabel(col).replace(" on a given day", "") + ", per year"
      : columnLabel(col).replace(" at the end of a given day", "") + ", at each year's end" }, xaxis,
      yaxis: { title: { text: unit } }, height: 280 });
}

function drawGroups(rows, cols, days, xaxis) {
  const r = state.results;
  if (r) {
    const ms = r.measures.filter((m) => m.measure === "wrongful_person_days_per_million" && m.key.startsWith("group="));
    plot("chart-groups", [{ type: "bar", x: ms.map((m) => "group " + m.key.slice(6)), y: ms.map((m) => m.value), marker: { color: "#b3261e" } }],
      { title: { text: "Wrongful sanctions by group" }, yaxis: { title: { text: "per million person-days" } } });
    return;
  }
  const groups = cols.filter((c) => /^sanctioned_wrongful_group\d+$/.test(c));
  plot("chart-groups", groups.map((c) => ({ x: days, y: series(rows, c), name: "group " + c.match(/\d+$/)[0] })),
    { title: { text: "Wrongfully sanctioned, by group" }, xaxis, yaxis: { title: { text: "people" } } });
}

// ------------------------------------------------------------------ reading results
function measure(r, name, key = "") { return r.measures.find((m) => m.measure === name && m.key === key); }
function value(r, name, key = "") { const m = measure(r, name, key); return m ? m.value : null; }

function table(id, head, rows, numeric = []) {
  const t = $(id);
  t.replaceChildren();
  t.append(el("tr", {}, ...head.map((h) => el("th", { text: h }))));
  for (const row of rows) {
    const tr = el("tr", {});
    row.forEach((c, i) => tr.append(el("td", { class: numeric.includes(i) ? "num" : "", text: c })));
    t.append(tr);
  }
  return t;
}

function showResults(job) {
  const r = job.results;
  state.rows = r.timeseries.day.map((_, i) => Object.fromEntries(Object.keys(r.timeseries).map((c) => [c, r.timeseries[c][i]])));
  drawLive();
  $("story").replaceChildren(...r.story.map((i) => el("li", {}, el("b", { text: i.title }), i.text)));
  table("figures", ["figure", "value", "unit"], r.summary.map((f) => [f.name, num(f.value), f.unit]), [1]);
  renderAudit(r);
  renderEu(r);
  renderImpact(r);
  renderPickers(r);
  renderDownloads(job);
}

function renderAudit(r) {
  const filter = $("audit-filter").value.toLowerCase();
  const rows = r.measures
    .filter((m) => !filter || (m.measure + " " + m.key + " " + m.label).toLowerCase().includes(filter))
    .map((m) => [m.label, m.key, m.measure, num(m.value), m.unit]);
  table("audit", ["measure", "key", "name", "value", "unit"], rows, [3]);
}

function renderEu(r) {
  const cc = value(r, "cross_context_share"), dp = value(r, "disproportionate_share");
  const bound = (measure(r, "disproportionate_share") || {}).unit || "";
  const box = $("euact");
  box.replaceChildren(
    el("h3", { text: "(i) Unrelated social contexts" }),
    el("p", {}, el("b", { text: `cross_context_share = ${num(cc)} (${pct(cc)})` }),
      ": the share of sanction applications whose gate lies in a different domain from the record that triggered it (travel refused because of a court debt, for instance)."),
    el("h3", { text: "(ii) Unjustified or disproportionate treatment" }),
    el("p", {}, el("b", { text: `disproportionate_share = ${num(dp)} (${pct(dp)})` }),
      `: the ${bound || "share of sanction applications above the proportionality bound"}. The bound is a parameter of the audit, not a legal threshold.`),
    el("table", { id: "eu-gates" }));
  const sanctions = r.gates.filter((g) => g.effect !== "perk");
  table("eu-gates", ["gate", "domain", "condition", "applications", "outside the triggering domain", "on a false record", "loss (days of income)"],
    sanctions.map((g) => [g.name, g.domain, g.condition, num(g.applications),
      g.applications ? pct(g.outside / g.applications) : "n/a", num(g.wrongful), num(g.loss_days)]), [3, 4, 5, 6]);
}

const VERDICTS = { 0: ["not flagged", "clear"], 1: ["inconclusive", "unsure"], 2: ["flagged", "flag"] };

function renderImpact(r) {
  const traces = [];
  const rows = [];
  for (const [what, name] of [["sanction", "sanctions"], ["listing", "listings"]]) {
    const ms = r.measures.filter((m) => m.measure === what + "_impact_ratio" && m.key.startsWith("group="));
    if (!ms.length) continue;
    const x = [], y = [], lo = [], hi = [];
    for (const m of ms) {
      const low = value(r, what + "_impact_ratio_low", m.key), high = value(r, what + "_impact_ratio_high", m.key);
      const verdict = value(r, what + "_four_fifths", m.key);
      x.push("group " + m.key.slice(6)); y.push(m.value);
      lo.push(m.value !== null && low !== null ? m.value - low : 0); hi.push(m.value !== null && high !== null ? high - m.value : 0);
      rows.push([name, "audit group " + m.key.slice(6), num(m.value, 3), `${num(low, 3)} to ${num(high, 3)}`,
        verdict === null ? "undefined (no one sanctioned)" : VERDICTS[verdict][0]]);
    }
    traces.push({ type: "bar", name, x, y, error_y: { type: "data", symmetric: false, array: hi, arrayminus: lo } });
  }
  plot("chart-impact", traces, { title: { text: "Impact ratio by audit group" }, barmode: "group",
    margin: { l: 55, r: 40, t: 36, b: 40 },
    yaxis: { title: { text: "ratio to the least-burdened group" }, rangemode: "tozero" },
    shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.8, y1: 0.8, line: { color: "#b3261e", dash: "dash" } }],
    annotations: [{ xref: "paper", x: 1, y: 0.8, text: "0.8", showarrow: false, xanchor: "left", font: { color: "#b3261e" } }] });
  const t = table("impact", ["of", "group", "impact ratio", "95 % interval", "four-fifths rule"], rows, [2, 3]);
  for (const tr of t.querySelectorAll("tr")) {
    const cell = tr.lastChild;
    const v = Object.values(VERDICTS).find(([w]) => w === cell.textContent);
    if (v) cell.className = v[1];
  }
}

function renderDownloads(job) {
  const list = $("downloads");
  const items = [["report", "The report: the same self-contained HTML as credsim report"],
    ["scenario", "The scenario TOML, which reproduces the run: credsim run FILE"],
    ["zip", "The run folder as a zip (every table, the manifest)"]];
  list.replaceChildren(...items.map(([kind, text]) => el("li", {},
    el("a", { href: jobPath(job.id, "/download/" + kind), "data-kind": kind, text }))));
}

// ------------------------------------------------------------------ follow a person
function renderPickers(r) {
  const box = $("pick");
  const lists = [["wrongful", "Wrongfully sanctioned"], ["fallen", "Fell furthest"], ["isolated", "Isolated critics"]];
  // Families worth following: a court-listed parent and their children, three generations.
  if (r.families) lists.push(["listed_parents", "A listed parent's children"], ["three_generations", "Three generations"]);
  const div = el("div", { class: "pickers" });
  for (const [key, title] of lists) {
    const ids = (r.candidates[key] || (r.families || {})[key]) || [];
    div.append(el("div", { "data-family": r.families && key in r.families ? key : null }, el("h3", { text: title }),
      ...(ids.length ? ids.map((id) => el("button", { type: "button", "data-person": id, onclick: () => lookup(id), text: "#" + id }))
        : [el("span", { class: "muted", text: "nobody in this run" })])));
  }
  box.replaceChildren(div);
}

async function lookup(id) {
  $("person-error").textContent = "";
  $("person-id").value = id;
  showTab("person");
  let data;
  try { data = await api(jobPath(state.job, "/person/" + encodeURIComponent(id))); }
  catch (e) { $("person-error").textContent = e.message; return; }
  const rec = data.record, p = data.person;
  // A slot whose person has died has no age band (demography).
  const facts = [["person", "#" + rec.id], ["age", rec.age_band ?? "died during the run"], ["audit group", rec.group],
    ["region", rec.region + (rec.urban ? " (urban)" : " (rural)")]];
  if (rec.score !== null && rec.score !== undefined) {
    facts.push(["score", `${rec.score} (true ${rec.score_true})`], ["grade", `${rec.grade} (true ${rec.grade_true})`]);
    if (rec.score < rec.score_true) facts.push(["points lost to false records", String(rec.score_true - rec.score)]);
  }
  if (rec.composite) facts.push(["composite score", `${rec.composite.score} (true ${rec.composite.score_true})`]);
  if (rec.rating) facts.push(["rating", `${num(rec.rating.rating, 3)} (true ${num(rec.rating.rating_true, 3)})`]);
  if (rec.listings !== null && rec.listings !== undefined) facts.push(["court listings", `${rec.listings} (${rec.listings_false} false)`]);
  facts.push(["sanctioned at the end", rec.sanctioned ? (rec.sanctioned_wrongful ? "yes, wrongfully" : "yes") : "no"]);
  if (p.contacts !== undefined) facts.push(["contacts", `${p.contacts} (${p.ties_dropped} ties dropped)`]);
  if (p.savings !== undefined) facts.push(["savings", num(Math.round(p.savings))]);
  const box = $("person");
  box.replaceChildren(
    el("div", { class: "facts" }, ...facts.map(([k, v]) => el("div", { class: "fact" }, el("span", { text: k }), String(v)))),
    el("div", { class: "chart", id: "chart-person" }),
    el("h3", { text: "Timeline: every entry, with its cause" }), el("table", { id: "timeline" }),
    el("h3", { text: "What they lost" }), el("table", { id: "lost" }),
    el("h3", { text: "Family over the run" }), el("p", { id: "family-note", class: "muted" }),
    el("div", { id: "family-tree", class: "tree" }), el("div", { class: "chart", id: "chart-family" }),
    el("h3", { text: "Household" }), el("table", { id: "family" }),
    el("details", {}, el("summary", { text: "The portal view, as credsim lookup prints it" }), el("pre", { class: "portal", text: data.portal })));
  const entries = rec.ledger;
  table("timeline", ["day", "kind", "cause", "record", "change", "value", "explanation"],
    entries.map((e) => [e.day, e.kind, e.cause, e.record, e.change, e.shown, e.note]), [0, 5]);
  $("timeline").querySelectorAll("tr").forEach((tr, i) => { if (i && entries[i - 1].record !== "true" && entries[i - 1].record !== "none") tr.classList.add("false"); });
  const lost = [...rec.restrictions.map((x) => [x.gate, x.domain, x.effect, x.wrongful ? "yes" : "no", x.applies ? "in force" : "held back (domain separation)"]),
    ...rec.gate_uses.filter((g) => g.effect === "sanction").map((g) => [g.gate, g.gate_domain, `${g.applications} applications, days ${g.first_day}–${g.last_day}`, g.wrongful ? `${g.wrongful} wrongful` : "no", "applied"])];
  table("lost", ["gate", "domain", "effect", "on a false record", "status"], lost.length ? lost : [["nothing", "", "", "", ""]]);
  const family = [...rec.parents.map((f) => [f.relation, "#" + f.id, f.age_band, f.grade ?? "", f.listings ?? "", f.school]),
    ...rec.children.map((f) => [f.relation, "#" + f.id, f.age_band, f.grade ?? "", f.listings ?? "", f.school]),
    ...data.household.filter((h) => ![...rec.parents, ...rec.children].some((f) => f.id === h.id)).map((h) => ["household", "#" + h.id, h.age_band, "", "", ""])];
  table("family", ["relation", "id", "age", "grade", "listings", "school"], family.length ? family : [["lives alone", "", "", "", "", ""]]);
  showFamily(id);
  const scored = entries.filter((e) => ["score", "composite", "rating"].includes(e.kind));
  if (scored.length) {
    const kind = scored[0].kind;
    const marks = scored.filter((e) => e.kind === kind);
    const last = state.results ? state.results.days - 1 : marks[marks.length - 1].day;
    // The held value from day 0, through each change, to the last day.
    // Values in the unit the timeline shows (stars for ratings, from hundredths).
    const scale = kind === "rating" ? 100 : 1;
    const own = [{ day: 0, value: (marks[0].value - marks[0].delta) / scale, record: "none" },
      ...marks.map((e) => ({ ...e, value: e.value / scale })),
      { day: last, value: marks[marks.length - 1].value / scale, record: "none" }];
    const falseOnes = own.filter((e) => e.record !== "true" && e.record !== "none");
    plot("chart-person", [{ x: own.map((e) => e.day), y: own.map((e) => e.value), mode: "lines+markers", line: { shape: "hv" }, name: kind },
      { x: falseOnes.map((e) => e.day), y: falseOnes.map((e) => e.value), mode: "markers", marker: { color: "#b3261e", size: 11, symbol: "x", line: { color: "#b3261e", width: 1 } }, name: "false record" }],
    { title: { text: `#${rec.id}: ${kind} over the run` }, height: 260, xaxis: { title: { text: "day" } },
      yaxis: { title: { text: kind === "rating" ? "stars" : kind } } });
  }
}

// ------------------------------------------------------------------ follow a family
const GENERATIONS = { "-2": "grandparents", "-1": "parents", 0: "this person, partners, siblings", 1: "children", 2: "grandchildren" };

async function showFamily(id) {
  let f;
  try { f = await api(jobPath(state.job, "/family/" + encodeURIComponent(id))); }
  catch (e) { $("family-note").textContent = e.message; return; }
  if (Number($("person-id").value) !== id) return;  // another person was chosen meanwhile
  const more = Object.entries(f.more).map(([rel, n]) => `${n} more of relation ${rel} not shown`);
  $("family-note").textContent = [f.members.length > 1 ? `${f.members.length - 1} relatives over the run; click one to follow them.`
    : "No relatives in this run.", ...more].join(" ");
  const tree = $("family-tree");
  tree.replaceChildren();
  for (const g of [-2, -1, 0, 1, 2]) {
    const members = f.members.filter((m) => m.generation === g);
    if (!members.length) continue;
    tree.append(el("div", { class: "generation", "data-generation": g }, el("span", { class: "gen-name", text: GENERATIONS[g] }),
      ...members.map((m) => memberCard(m))));
  }
  drawFamily(f);
}

function memberCard(m) {
  const listed = m.ever_listed === true;
  const dead = m.alive === false;
  const cls = ["member", m.relation === "self" ? "self" : "", listed ? "listed" : "", dead ? "dead" : ""].filter(Boolean).join(" ");
  const who = [m.sex, m.age === null || m.age === undefined ? m.age_band : `${num(m.age, 3)} years${dead ? " at death" : ""}`].filter(Boolean).join(", ");
  const standing = [m.grade ? "grade " + m.grade : "", m.score !== null && m.score !== undefined ? "score " + m.score : "",
    m.composite !== null && m.composite !== undefined && m.composite >= 0 ? "composite " + m.composite : "",
    m.rating !== null && m.rating !== undefined ? `rating ${num(m.rating, 3)} stars` : ""].filter(Boolean).join(" · ");
  const born = m.birth_day !== null && m.birth_day !== undefined && m.birth_day >= 0 ? `born on day ${num(m.birth_day)}` : "";
  return el("button", { type: "button", class: cls, "data-member": m.id, title: "follow #" + m.id,
    onclick: () => lookup(m.id) },
  el("b", { text: `#${m.id} ${m.relation_shown}` }), el("span", { text: who || "" }),
  el("span", { text: standing || (m.age_band === "child" ? "a child: no score yet" : "no score") }),
  el("span", { text: [born, dead ? "died" : ""].filter(Boolean).join(" · ") }),
  listed ? el("span", { class: "tag", text: `on the court list${m.listings ? ` (${m.listings} listings)` : ""}` }) : "");
}

function drawFamily(f) {
  const traces = [];
  const shown = (m) => `#${m.id} ${m.relation_shown}`;
  const byId = Object.fromEntries(f.members.map((m) => [String(m.id), m]));
  const ys = [];
  for (const m of f.members) {
    const line = f.lines[String(m.id)];
    if (!line) continue;
    ys.push(...line.value);
    traces.push({ x: line.day, y: line.value, mode: "lines", line: { shape: "hv", width: m.relation === "self" ? 3 : 1.5 }, name: shown(m) });
    if (line.false.day.length) traces.push({ x: line.false.day, y: line.false.value, mode: "markers", showlegend: false,
      marker: { color: "#b3261e", size: 9, symbol: "x" }, name: shown(m) + ": false record" });
  }
  // Life events on a row below the lines: each birth and death, named by member.
  const low = ys.length ? Math.min(...ys) - 0.05 * (Math.max(...ys) - Math.min(...ys) || 1) : 0;
  for (const [cause, symbol, color] of [["birth", "triangle-up", "#1b7f3b"], ["death", "cross", "#1d2733"]]) {
    const evs = f.events.filter((e) => e.cause === cause);
    if (evs.length) traces.push({ x: evs.map((e) => e.day), y: evs.map(() => low), mode: "markers", name: cause + "s",
      text: evs.map((e) => `${shown(byId[String(e.id)] || { id: e.id, relation_shown: "" })} ${cause === "birth" ? "born" : "died"}`),
      hoverinfo: "text+x", marker: { symbol, size: 10, color } });
  }
  const others = f.events.filter((e) => !["birth", "death"].includes(e.cause));
  if (others.length) traces.push({ x: others.map((e) => e.day), y: others.map(() => low), mode: "markers", name: "other life events",
    text: others.map((e) => `#${e.id} ${e.cause}`), hoverinfo: "text+x", marker: { symbol: "diamond", size: 8, color: "#9a6700" } });
  const unit = f.unit || "score";
  plot("chart-family", traces, { title: { text: f.kind ? `The family's ${f.kind} over the run, with births and deaths` : "Births and deaths in the family (no score in this scenario)" },
    height: 320, xaxis: { title: { text: "day" } }, yaxis: { title: { text: unit } }, legend: { orientation: "h", y: -0.25 } });
}

// ------------------------------------------------------------------ compare
function renderChangeOptions() {
  $("changes").replaceChildren();
  addChange("safeguards.review_capacity", 200);
}

function addChange(key = null, val = null) {
  const levers = state.levers.filter((l) => l.group !== "run" && ["number", "toggle", "choice"].includes(l.control));
  levers.sort((a, b) => (["safeguards", "threats"].includes(b.group) - ["safeguards", "threats"].includes(a.group)));
  const select = el("select", { "aria-label": "lever to change" });
  for (const l of levers) select.append(el("option", { value: l.key, text: l.key }));
  if (key && levers.some((l) => l.key === key)) select.value = key;
  const slot = el("span", { class: "change-value" });
  const lever = () => levers.find((l) => l.key === select.value);
  // The value's control follows the lever: true/false and choices from a list, so that
  // nothing typed is silently read as something else.
  const fill = (v) => slot.replaceChildren(changeControl(lever(), v));
  select.addEventListener("change", () => fill(null));
  fill(val);
  const row = el("div", { class: "change" }, el("span", { text: "B sets" }), select, el("span", { text: "=" }), slot,
    el("button", { type: "button", text: "remove", onclick: () => row.remove() }));
  $("changes").append(row);
}

function changeControl(lever, val) {
  const label = "its value in setting B";
  if (lever && (lever.control === "toggle" || lever.control === "choice")) {
    const options = lever.control === "toggle" ? [true, false] : lever.options;
    const select = el("select", { "aria-label": label, "data-control": lever.control });
    for (const o of options) select.append(el("option", { value: String(o), text: String(o) }));
    // By default B sets the other value than A's, so that the change changes something.
    const current = currentValue(lever);
    const pick = val ?? options.find((o) => o !== current) ?? current;
    select.value = String(pick);
    return select;
  }
  return el("input", { type: "text", "aria-label": label, "data-control": "text", value: val ?? "" });
}

function changes() {
  const out = {};
  for (const row of document.querySelectorAll("#changes .change")) {
    const key = row.querySelector("select").value;
    const lever = state.levers.find((l) => l.key === key);
    const control = row.querySelector("[data-control]");
    const text = control.value;
    if (control.dataset.control === "toggle") out[key] = text === "true";
    else out[key] = lever && lever.control === "number" ? parseNumber(text) : text;
  }
  return out;
}

async function startCompare() {
  $("compare-error").textContent = "";
  $("compare-run").disabled = true;
  try {
    const job = await api("/api/jobs", { body: { kind: "compare", preset: state.preset, set: state.overrides, changes: changes(), replicates: Number($("replicates").value) } });
    followCompare(job.id, job.share);
  } catch (e) { $("compare-error").textContent = e.message; $("compare-run").disabled = false; }
}

function followCompare(id, share, owner = true) {
  listJobs();
  state.compareJob = id; state.share = share;
  $("compare-run").disabled = true;
  $("compare-cancel").disabled = !owner;
  showShare(id, share);
  const source = new EventSource(jobPath(id, "/events"));
  source.addEventListener("progress", (e) => { const p = JSON.parse(e.data); $("compare-text").textContent = `${p.state}: ${p.phase}`; });
  source.addEventListener("end", async () => {
    source.close();
    $("compare-cancel").disabled = true;
    $("compare-run").disabled = false;
    const done = await api(jobPath(id));
    if (done.state !== "finished") { $("compare-text").textContent = done.state; $("compare-error").textContent = done.error; return; }
    $("compare-text").textContent = `finished: ${done.results.replicates} replicate pairs with common random numbers`;
    renderCompare(done.results);
    renderDownloads(done);
    listJobs();
  });
}

function iv(lo, hi) { return lo === null || hi === null ? "" : ` [${num(lo, 3)}, ${num(hi, 3)}]`; }

function renderCompare(c) {
  const [a, b] = c.labels;
  const rows = c.measures.filter((m) => m.points[1]);
  const head = rows.filter((m) => m.headline && m.points[1].diff !== null);
  table("compare", ["measure", "A: " + a, "B: " + b, "B − A (paired, 95 %)", "unit"],
    rows.map((m) => [m.label + (m.key ? ` (${m.key})` : ""), num(m.points[0]?.mean, 3) + iv(m.points[0]?.low, m.points[0]?.high),
      num(m.points[1].mean, 3) + iv(m.points[1].low, m.points[1].high),
      num(m.points[1].diff, 3) + iv(m.points[1].diff_low, m.points[1].diff_high), m.unit]), [1, 2, 3]);
  // Measures differ in units, so the chart puts each difference relative to setting A.
  const shown = head.filter((m) => m.points[0] && m.points[0].mean);
  const names = shown.map((m) => (m.label.length > 48 ? m.label.slice(0, 46) + "…" : m.label) + (m.key ? ` (${m.key})` : ""));
  const ratio = (m, v) => (v === null || v === undefined ? null : 100 * v / Math.abs(m.points[0].mean));
  const x = shown.map((m) => ratio(m, m.points[1].diff));
  plot("chart-forest", [{ type: "scatter", mode: "markers", y: names, x,
    error_x: { type: "data", symmetric: false,
      array: shown.map((m, i) => (ratio(m, m.points[1].diff_high) ?? x[i]) - x[i]),
      arrayminus: shown.map((m, i) => x[i] - (ratio(m, m.points[1].diff_low) ?? x[i])) }, marker: { color: "#0b6bcb", size: 9 } }],
  { title: { text: "Paired difference B − A, as % of A, with 95 % intervals" }, height: 90 + 28 * shown.length,
    margin: { l: 330, r: 20, t: 36, b: 40 }, xaxis: { zeroline: true, zerolinecolor: "#888", ticksuffix: " %" }, yaxis: { autorange: "reversed" } });
}

// ------------------------------------------------------------------ the tour
let TOUR = [];  // static/tour.json, which the tests run
let tourAt = 0;
function showTour(i) {
  tourAt = i;
  const step = TOUR[i];
  $("tour").hidden = false;
  $("tour-step").textContent = `Step ${i + 1} of ${TOUR.length}`;
  $("tour-title").textContent = step.title;
  $("tour-text").textContent = step.text;
  $("tour-apply").hidden = !step.preset;
  $("tour-next").textContent = i + 1 < TOUR.length ? "Next" : "Done";
}
async function applyTour() {
  const step = TOUR[tourAt];
  if (step.preset) await choosePreset(step.preset, step.set);
  if (step.compare) { showTab("compare"); }
}

// ------------------------------------------------------------------ start
// A job from the address (a reload, or a share link): its levers, and for a comparison
// the changes it made, then its progress or results.
async function reopen(id) {
  const job = await api(jobPath(id));
  await choosePreset(job.spec.preset, job.spec.set);
  if (job.kind === "compare") {
    $("changes").replaceChildren();
    for (const [key, value] of Object.entries(job.spec.changes)) addChange(key, value);
    $("replicates").value = String(job.spec.replicates);
    showTab("compare");
    followCompare(id, state.share, job.owner);
  } else followJob(id, state.share, job.owner);
}

async function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("run").addEventListener("click", startRun);
  $("cancel").addEventListener("click", () => state.job && cancelJob(state.job));
  $("compare-run").addEventListener("click", startCompare);
  $("compare-cancel").addEventListener("click", () => state.compareJob && cancelJob(state.compareJob));
  $("add-change").addEventListener("click", () => addChange());
  $("person-go").addEventListener("click", () => {
    const text = $("person-id").value.trim();  // an empty box is not person #0
    if (!/^[0-9]+$/.test(text)) { $("person-error").textContent = "person id: type a whole number (a person's #id)"; return; }
    lookup(Number(text));
  });
  $("audit-filter").addEventListener("input", () => state.results && renderAudit(state.results));
  $("yearly-column").addEventListener("change", () => drawLive());
  $("share").addEventListener("focus", () => $("share").select());
  $("tour-start").addEventListener("click", () => showTour(0));
  $("tour-apply").addEventListener("click", applyTour);
  $("tour-next").addEventListener("click", () => (tourAt + 1 < TOUR.length ? showTour(tourAt + 1) : ($("tour").hidden = true)));
  $("tour-close").addEventListener("click", () => ($("tour").hidden = true));
  TOUR = await api("/static/tour.json");
  await loadPresets();
  const params = new URLSearchParams(location.search);
  const shared = params.get("job");
  if (shared) {
    state.share = params.get("share");
    try { await reopen(shared); } catch (e) { $("run-error").textContent = e.message; }
  } else {
    // A reload of a page whose job is still running (or queued) reconnects to it.
    const mine = await listJobs();
    const open = mine.filter((j) => !["finished", "failed", "cancelled"].includes(j.state)).pop();
    if (open) { state.share = open.share; await reopen(open.id); }
    else await choosePreset("rongcheng");
  }
  drawLive();
}

// This browser's jobs, each a link that reopens it.
async function listJobs() {
  const mine = await api("/api/jobs").catch(() => []);
  $("my-jobs").replaceChildren(...(mine.length ? mine.map((j) => el("li", {},
    el("a", { href: "/?job=" + encodeURIComponent(j.id) + "&share=" + encodeURIComponent(j.share),
      text: `${j.kind} of ${j.preset}, ${num(j.people)} people × ${count(j.days, "day")}` }), ` (${j.state})`))
    : [el("li", { class: "muted", text: "none yet" })]));
  return mine;
}
document.addEventListener("DOMContentLoaded", init);
