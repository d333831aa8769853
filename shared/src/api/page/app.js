// kubecur's Cost Allocation page. Reads only the public API (GET allocation, GET status), relative to
// the page, so it works behind `kubecur serve`, `kubecur serve --api URL` and the API function alike.
// The view is in the page's URL (?window=…&aggregate=…&costMetric=…&filterNamespaces=…), so a link
// shows the same view.
"use strict";

// ---------------------------------------------------------------- the pickers' choices (one place)

const WINDOWS = [
  { value: "7d", label: "Last 7 days" },
  { value: "month", label: "This month" },
  { value: "lastmonth", label: "Last month" },
  { value: "custom", label: "Custom…" },
];

const METRICS = [
  { value: "amortizedNetCost", label: "Amortized net cost" },
  { value: "amortizedCost", label: "Amortized cost" },
  { value: "netCost", label: "Net cost" },
  { value: "listCost", label: "List cost" },
];

// Aggregates the API takes. `drill` is the level a click on a group opens, with the group's value as a
// filter. The labels the serving months were computed with (`GET /status`, `serving.labels`) are added
// as `label:KEY` once the status has loaded; an aggregate the URL names that is listed nowhere is added
// to the picker as it is, and the API says whether it takes it.
const AGGREGATES = [
  { value: "namespace", label: "Namespace", drill: "deployment", tag: "kubernetes_namespace" },
  { value: "deployment", label: "Deployment", drill: "pod", tag: "kubernetes_deployment" },
  { value: "pod", label: "Pod", tag: "kubernetes_pod" },
  { value: "daemonset", label: "DaemonSet", tag: "kubernetes_daemonset" },
  { value: "container", label: "Container", tag: "kubernetes_container" },
  { value: "cluster", label: "Cluster", tag: "kubernetes_cluster" },
  { value: "service", label: "Service" },
  { value: "account", label: "Account" },
];

// Filters the drill-down sets, in drill order, and the API parameter of each.
const DRILL_FILTERS = [
  { dimension: "namespace", param: "filterNamespaces" },
  { dimension: "deployment", param: "filterDeployments" },
];

const DEFAULTS = { window: "month", aggregate: "namespace", costMetric: "amortizedNetCost" };
const UNALLOCATED = "__unallocated__";
const TOP_GROUPS = 8;
const COLOURS = ["#2f6db5", "#e07b24", "#3a9a5b", "#c23b3b", "#8a5cc2", "#8c6d46", "#d46bb0", "#5d8f99", "#9aa0a6"];

// ---------------------------------------------------------------- numbers as the CLI prints them

// cli/src/output.rs `money`: rounded to cents, thousands grouped with commas, "-" only when not 0.00.
function money(value) {
  const cents = Math.round(Math.abs(value) * 100);
  const units = Math.floor(cents / 100).toString();
  const fraction = (cents % 100).toString().padStart(2, "0");
  const grouped = units.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (value < 0 && cents > 0 ? "-" : "") + grouped + "." + fraction;
}

// The CLI's SHARE column: one decimal and " %", "-" when the total is 0.
function share(value, total) {
  return Math.abs(total) > Number.EPSILON ? (value / total * 100).toFixed(1) + " %" : "-";
}

// kubecur's CSV rule (shared/src/api/mod.rs `csv_field`): text that could start a formula gets a
// leading quote; cells with separators, quotes, line breaks or edge spaces are quoted.
function csvField(text) {
  let cell = String(text);
  if (/^[=+\-@\t\r]/.test(cell)) cell = "'" + cell;
  if (/[",\n\r]/.test(cell) || cell.startsWith(" ") || cell.endsWith(" ")) {
    cell = '"' + cell.replace(/"/g, '""') + '"';
  }
  return cell;
}

// ---------------------------------------------------------------- state <-> URL

function readState() {
  const params = new URLSearchParams(location.search);
  const state = {
    window: params.get("window") || DEFAULTS.window,
    aggregate: params.get("aggregate") || DEFAULTS.aggregate,
    costMetric: params.get("costMetric") || DEFAULTS.costMetric,
    filters: [],
  };
  for (const [name, value] of params) {
    if (name.startsWith("filter") && value !== "") state.filters.push([name, value]);
  }
  return state;
}

function stateQuery(state) {
  const params = new URLSearchParams();
  params.set("window", state.window);
  params.set("aggregate", state.aggregate);
  params.set("costMetric", state.costMetric);
  for (const [name, value] of state.filters) params.set(name, value);
  return params.toString();
}

function go(state, push) {
  const url = "?" + stateQuery(state);
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  render(state);
}

// ---------------------------------------------------------------- the API

let token = sessionStorage.getItem("kubecur.token") || "";
if (location.hash.startsWith("#token=")) {
  token = decodeURIComponent(location.hash.slice(7));
  sessionStorage.setItem("kubecur.token", token);
  history.replaceState(null, "", location.pathname + location.search);
}

class ApiError extends Error {
  constructor(status, body, what) {
    let text;
    const error = body && body.error;
    if (error && error.parameter) {
      text = `The API refused \`${error.parameter}\`: ${error.message} (allowed: ${error.allowed}).`;
    } else if (body && body.message) {
      text = body.message + (body.errorId ? ` (error id ${body.errorId})` : "");
    } else {
      text = `The API answered ${status}.`;
    }
    super(`${what}: ${text}`);
    this.status = status;
    this.parameter = error && error.parameter;
  }
}

async function api(path, query, what) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  let response;
  try {
    response = await fetch(path + (query ? "?" + query : ""), { headers });
  } catch (err) {
    throw new Error(`${what}: the API could not be reached (${err.message}).`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (response.status === 401 || response.status === 403) {
    document.getElementById("token-box").hidden = false;
  }
  if (!response.ok || !body) throw new ApiError(response.status, body, what);
  return body;
}

// ---------------------------------------------------------------- pickers

const $ = (id) => document.getElementById(id);

function fillSelect(select, choices, value) {
  select.replaceChildren();
  const all = choices.slice();
  if (!all.some((c) => c.value === value)) all.push({ value, label: value });
  for (const choice of all) {
    const option = document.createElement("option");
    option.value = choice.value;
    option.textContent = choice.label;
    select.append(option);
  }
  select.value = value;
}

const DAY_WINDOW = /^(\d{4}-\d{2}-\d{2})T00:00:00Z,(\d{4}-\d{2}-\d{2})T00:00:00Z$/;

function addDays(day, n) {
  const date = new Date(day + "T00:00:00Z");
  date.setUTCDate(date.getUTCDate() + n);
  return date.toISOString().slice(0, 10);
}

// The tag keys of `label:KEY` aggregates the serving months hold (from the last status read).
let computedLabels = [];

function aggregateChoices() {
  return AGGREGATES.concat(computedLabels.map((key) => ({ value: `label:${key}`, label: `Label ${key}` })));
}

function showPickers(state) {
  const preset = WINDOWS.some((w) => w.value === state.window && w.value !== "custom");
  fillSelect($("window"), WINDOWS, preset ? state.window : "custom");
  $("custom").hidden = preset;
  const days = DAY_WINDOW.exec(state.window);
  if (!preset) {
    $("from").value = days ? days[1] : "";
    $("to").value = days ? addDays(days[2], -1) : "";
  }
  fillSelect($("costMetric"), METRICS, state.costMetric);
  fillSelect($("aggregate"), aggregateChoices(), state.aggregate);
}

function wirePickers() {
  $("window").addEventListener("change", () => {
    const state = readState();
    if ($("window").value === "custom") {
      $("custom").hidden = false;
      const today = new Date().toISOString().slice(0, 10);
      if (!$("from").value) $("from").value = today.slice(0, 8) + "01";
      if (!$("to").value) $("to").value = today;
      $("from").focus();
      return;
    }
    state.window = $("window").value;
    go(state, true);
  });
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    const [from, to] = [$("from").value, $("to").value];
    if (!from || !to) return showMessage("Pick a first and a last day for a custom window.");
    if (to < from) return showMessage("The last day is before the first day.");
    const state = readState();
    state.window = `${from}T00:00:00Z,${addDays(to, 1)}T00:00:00Z`;
    go(state, true);
  });
  $("costMetric").addEventListener("change", () => {
    const state = readState();
    state.costMetric = $("costMetric").value;
    go(state, true);
  });
  $("aggregate").addEventListener("change", () => {
    const state = readState();
    state.aggregate = $("aggregate").value;
    go(state, true);
  });
  $("csv").addEventListener("click", downloadCsv);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("kubecur.token", token);
    $("token-box").hidden = true;
    render(readState());
  });
  window.addEventListener("popstate", () => render(readState()));
}

// ---------------------------------------------------------------- drill-down

function drillTarget(state, row) {
  const level = AGGREGATES.find((a) => a.value === state.aggregate);
  if (!level || !level.drill || state.aggregate.includes(",")) return null;
  const value = row.properties[state.aggregate];
  // Filter values are comma-separated in the API; a value holding a comma cannot be one.
  if (value === undefined || value === UNALLOCATED || value.includes(",")) return null;
  const filter = DRILL_FILTERS.find((f) => f.dimension === state.aggregate);
  if (!filter) return null;
  const next = { ...state, aggregate: level.drill, filters: state.filters.filter(([n]) => n !== filter.param) };
  next.filters.push([filter.param, value]);
  return next;
}

function showCrumbs(state) {
  const nav = $("crumbs");
  nav.replaceChildren();
  const drilled = DRILL_FILTERS.filter((f) => state.filters.some(([n]) => n === f.param));
  if (drilled.length === 0 && state.filters.length === 0) return;
  const link = (text, target) => {
    const a = document.createElement("a");
    a.href = "?" + stateQuery(target);
    a.textContent = text;
    a.addEventListener("click", (event) => {
      event.preventDefault();
      go(target, true);
    });
    return a;
  };
  const top = { ...state, aggregate: "namespace", filters: [] };
  nav.append(link("All namespaces", top));
  let filters = [];
  DRILL_FILTERS.forEach((f, i) => {
    const entry = state.filters.find(([n]) => n === f.param);
    if (!entry) return;
    filters = filters.concat([entry]);
    const below = AGGREGATES.find((a) => a.value === f.dimension).drill;
    const here = { ...state, aggregate: below, filters: filters.slice() };
    nav.append(" › ");
    const isLast = i === DRILL_FILTERS.length - 1 || !state.filters.some(([n]) => n === DRILL_FILTERS[i + 1].param);
    if (isLast) {
      const span = document.createElement("span");
      span.setAttribute("aria-current", "page");
      span.textContent = `${f.dimension} ${entry[1]}`;
      nav.append(span);
    } else {
      nav.append(link(`${f.dimension} ${entry[1]}`, here));
    }
  });
  const other = state.filters.filter(([n]) => !DRILL_FILTERS.some((f) => f.param === n));
  for (const [name, value] of other) nav.append(` · ${name}=${value}`);
}

// ---------------------------------------------------------------- rendering

let current = null; // what is on screen: { state, rows, total, keys, sort }
let chart = null;
let generation = 0;

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

function groupsOf(set) {
  return Object.values(set || {});
}

function keysOf(state, rows, meta) {
  if (meta && Array.isArray(meta.aggregate) && meta.aggregate.length) return meta.aggregate.map(String);
  if (rows.length) return Object.keys(rows[0].properties);
  return state.aggregate.split(",");
}

function isUnallocated(row) {
  return Object.values(row.properties).some((v) => v === UNALLOCATED);
}

async function render(state) {
  const mine = ++generation;
  showPickers(state);
  showCrumbs(state);
  showMessage("");
  $("csv").disabled = true;
  $("summary").textContent = "Loading…";
  const query = stateQuery(state);
  const [whole, daily, status] = await Promise.allSettled([
    api("allocation", query, "Allocation"),
    api("allocation", query + "&step=1d", "Daily chart"),
    api("status", "", "Status"),
  ]);
  if (mine !== generation) return; // a newer view was asked for meanwhile
  document.body.dataset.state = "loaded";
  showStatus(status);
  if (whole.status === "rejected") {
    current = null;
    showMessage(whole.reason.message);
    $("summary").textContent = "Nothing to show for this view.";
    $("groups").replaceChildren();
    $("unallocated-help").hidden = true;
    showChart(state, null, null, whole.reason.message);
    showWarnings([]);
    document.body.dataset.state = "error";
    return;
  }
  const body = whole.value;
  const rows = groupsOf(body.data[0]);
  const summary = body.meta.summary;
  const keys = keysOf(state, rows, body.meta);
  current = { state, rows, total: summary.total, keys, sort: { column: "cost", descending: true }, meta: body.meta };
  showSummary(body.meta, state);
  showTable();
  showWarnings(body.meta.warnings || []);
  if (daily.status === "rejected") {
    const tooMany = daily.reason.parameter === "aggregate";
    showChart(state, rows, null, tooMany
      ? "Too many groups for a daily chart of this window (the API's group limit): drill down or pick a shorter window. The table is complete."
      : daily.reason.message);
  } else {
    showChart(state, rows, daily.value, "");
  }
  $("csv").disabled = rows.length === 0;
}

function showSummary(meta, state) {
  const s = meta.summary;
  const w = meta.window;
  const from = w.start.slice(0, 10);
  const to = w.end.slice(0, 10);
  const allocatedShare = s.allocatedShare === null || s.allocatedShare === undefined ? "n/a" : (s.allocatedShare * 100).toFixed(1) + " %";
  const warnings = (meta.warnings || []).length;
  $("summary").textContent =
    `${state.costMetric} total ${money(s.total)} over ${from} to ${to} (exclusive) (${s.lineItems} line items): ` +
    `allocated ${allocatedShare}, unallocated ${money(s.unallocated)}, ${warnings} warning${warnings === 1 ? "" : "s"}`;
}

const COLUMNS = [
  { id: "cost", label: null, get: (r) => r.totalCost, text: (r) => money(r.totalCost) },
  { id: "share", label: "Share", get: (r) => r.totalCost, text: (r) => share(r.totalCost, current.total) },
  { id: "resources", label: "Resources", get: (r) => r.resources, text: (r) => String(r.resources) },
  { id: "lineItems", label: "Line items", get: (r) => r.lineItems, text: (r) => String(r.lineItems) },
];

function sortedRows() {
  const { rows, sort, keys } = current;
  const column = COLUMNS.find((c) => c.id === sort.column);
  const direction = sort.descending ? -1 : 1;
  const byKeys = (a, b) => {
    for (const k of keys) {
      const x = a.properties[k] ?? "";
      const y = b.properties[k] ?? "";
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  };
  return rows.slice().sort((a, b) => {
    if (column) return (column.get(a) - column.get(b)) * direction || byKeys(a, b);
    const x = a.properties[sort.column] ?? "";
    const y = b.properties[sort.column] ?? "";
    return (x === y ? 0 : (x < y ? -1 : 1) * direction) || byKeys(a, b);
  });
}

function headerCell(id, label, numeric) {
  const th = document.createElement("th");
  th.scope = "col";
  if (numeric) th.className = "num";
  const { sort } = current;
  const active = sort.column === id;
  th.setAttribute("aria-sort", active ? (sort.descending ? "descending" : "ascending") : "none");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.sort = id;
  button.textContent = label + (active ? (sort.descending ? " ▼" : " ▲") : "");
  button.addEventListener("click", () => {
    current.sort = { column: id, descending: active ? !sort.descending : numeric };
    showTable();
    const again = document.querySelector(`#groups th button[data-sort="${CSS.escape(id)}"]`);
    if (again) again.focus();
  });
  th.append(button);
  return th;
}

function showTable() {
  const { keys, state } = current;
  const table = $("groups");
  table.replaceChildren();
  const caption = document.createElement("caption");
  caption.textContent = `${current.rows.length} group${current.rows.length === 1 ? "" : "s"} by ${keys.join(", ")}, ${state.costMetric}` +
    (current.rows.length ? "" : ": no cost in this window (the data status below shows the billing periods that have data)");
  table.append(caption);
  const head = document.createElement("thead");
  const tr = document.createElement("tr");
  for (const key of keys) tr.append(headerCell(key, key, false));
  for (const column of COLUMNS) tr.append(headerCell(column.id, column.label || state.costMetric, true));
  head.append(tr);
  table.append(head);
  const body = document.createElement("tbody");
  let unallocated = false;
  for (const row of sortedRows()) {
    const line = document.createElement("tr");
    line.dataset.name = row.name;
    if (isUnallocated(row)) {
      unallocated = true;
      line.classList.add("unallocated");
    }
    keys.forEach((key, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      const value = row.properties[key] ?? "";
      const target = i === keys.length - 1 ? drillTarget(state, row) : null;
      if (target) {
        const a = document.createElement("a");
        a.href = "?" + stateQuery(target);
        a.textContent = value;
        a.className = "drill";
        a.title = `Show the ${target.aggregate}s of ${key} ${value}`;
        a.addEventListener("click", (event) => {
          event.preventDefault();
          go(target, true);
        });
        cell.append(a);
      } else {
        cell.append(value);
      }
      if (value === UNALLOCATED) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "untagged";
        badge.title = "No tag for this level: tag these resources, then activate the tag";
        cell.append(" ", badge);
      }
      line.append(cell);
    });
    for (const column of COLUMNS) {
      const cell = document.createElement("td");
      cell.className = "num";
      cell.dataset.column = column.id;
      cell.textContent = column.text(row);
      line.append(cell);
    }
    body.append(line);
  }
  table.append(body);
  const help = $("unallocated-help");
  help.hidden = !unallocated;
  const tags = keys.map((k) => AGGREGATES.find((a) => a.value === k)).filter((a) => a && a.tag).map((a) => a.tag);
  $("unallocated-tags").textContent = tags.length ? tags.join(", ") : "kubernetes_namespace";
}

// ---------------------------------------------------------------- the daily chart

function showChart(state, rows, daily, note) {
  const box = $("chart");
  if (chart) {
    chart.destroy();
    chart = null;
  }
  box.replaceChildren();
  $("chart-note").textContent = "";
  $("chart-data").replaceChildren();
  $("chart-data-box").hidden = true;
  if (!rows || !daily || rows.length === 0) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = note || "No cost in this window.";
    box.append(p);
    return;
  }
  // The top groups of the window (as the table sorts them by default), and "other" for the rest.
  const top = rows.slice().sort((a, b) => b.totalCost - a.totalCost || (a.name < b.name ? -1 : 1)).slice(0, TOP_GROUPS);
  const topNames = top.map((r) => r.name);
  // One set per day from the window's start, in order (an empty day is an empty set).
  const start = Date.parse(daily.meta.window.start) / 1000;
  const xs = daily.data.map((_, i) => start + i * 86400);
  const series = topNames.map((name) => daily.data.map((set) => (set[name] ? set[name].totalCost : 0)));
  const other = daily.data.map((set) => Object.entries(set).reduce((sum, [name, g]) => (topNames.includes(name) ? sum : sum + g.totalCost), 0));
  const hasOther = other.some((v) => Math.abs(v) >= 0.005);
  const names = topNames.concat(hasOther ? ["other"] : []);
  const raw = series.concat(hasOther ? [other] : []);
  // Stacked: each series is drawn from 0 to its running sum, the largest sum first.
  const stacked = [];
  raw.forEach((values, i) => stacked.push(values.map((v, d) => v + (i ? stacked[i - 1][d] : 0))));
  const width = Math.max(280, box.clientWidth || 600);
  const height = width < 500 ? 220 : 300;
  const seriesOpts = [{ label: "Day", value: (u, x) => (x == null ? "" : new Date(x * 1000).toISOString().slice(0, 10)) }];
  names.forEach((name, i) => {
    seriesOpts.push({
      label: name,
      stroke: COLOURS[i % COLOURS.length],
      fill: COLOURS[i % COLOURS.length] + "cc",
      width: 0,
      points: { show: false },
      paths: uPlot.paths.bars({ size: [0.8, 60] }),
    });
  });
  // uPlot draws series in order: the full stack first, then each smaller running sum on top of it.
  const order = names.map((_, i) => names.length - 1 - i);
  const data = [xs].concat(order.map((i) => stacked[i]));
  const opts = {
    width,
    height,
    series: [seriesOpts[0]].concat(order.map((i) => seriesOpts[i + 1])),
    scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } },
    axes: [{}, { values: (u, ticks) => ticks.map((t) => money(t)), size: 80 }],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  // The legend shows each group's own figure, not its running sum.
  opts.series.forEach((s, drawn) => {
    if (drawn === 0) return;
    const i = order[drawn - 1];
    s.value = (u, v, si, idx) => (idx == null ? "" : money(raw[i][idx]));
  });
  chart = new uPlot(opts, data, box);
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", `Daily ${state.costMetric} of the top ${topNames.length} groups${hasOther ? " and other" : ""}; the numbers are in the table below the chart.`);
  $("chart-note").textContent = `top ${topNames.length}${hasOther ? " + other" : ""}, ${xs.length} day${xs.length === 1 ? "" : "s"}`;
  showChartData(xs, names, raw);
}

function showChartData(xs, names, raw) {
  const table = $("chart-data");
  const head = document.createElement("tr");
  for (const label of ["Day"].concat(names, ["Total"])) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  xs.forEach((x, d) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = new Date(x * 1000).toISOString().slice(0, 10);
    tr.append(th);
    let total = 0;
    raw.forEach((values) => {
      total += values[d];
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = money(values[d]);
      tr.append(td);
    });
    const td = document.createElement("td");
    td.className = "num";
    td.dataset.column = "total";
    td.textContent = money(total);
    tr.append(td);
    tbody.append(tr);
  });
  table.append(thead, tbody);
  $("chart-data-box").hidden = false;
}

window.addEventListener("resize", () => {
  if (chart) chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: $("chart").clientWidth < 500 ? 220 : 300 });
});

// ---------------------------------------------------------------- status and warnings

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function showStatus(result) {
  const box = $("status");
  box.replaceChildren();
  if (result.status === "rejected") {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = result.reason.message;
    box.append(p);
    return;
  }
  const periods = result.value.data || [];
  const labels = [];
  for (const p of periods) {
    for (const key of (p.serving && p.serving.labels) || []) {
      if (typeof key === "string" && !labels.includes(key)) labels.push(key);
    }
  }
  if (labels.join("\n") !== computedLabels.join("\n")) {
    computedLabels = labels;
    fillSelect($("aggregate"), aggregateChoices(), readState().aggregate);
  }
  if (periods.length === 0) {
    box.textContent = "No billing period has been allocated yet.";
    return;
  }
  const table = document.createElement("table");
  table.id = "status-table";
  const head = document.createElement("tr");
  for (const label of ["Billing period", "Health", "Data from", "Line items", "Missing tag columns", "Warnings", "Last failure"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  for (const p of periods.slice().sort((a, b) => (a.period < b.period ? 1 : -1))) {
    const s = p.serving || {};
    const f = p.lastFailure;
    const failure = f ? `${f.reason} (run ${f.runId}, ${f.at})` : "none";
    const cells = [
      p.period,
      p.health,
      p.serving ? `${age(p.ageSeconds)} (${s.computedAt})` : "no snapshot",
      p.serving ? String(s.lineItems) : "-",
      (s.missingTagColumns || []).join(", ") || "none",
      (s.warnings || []).join("; ") || "none",
      failure,
    ];
    const tr = document.createElement("tr");
    tr.dataset.period = p.period;
    cells.forEach((text, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      cell.textContent = String(text);
      if (i === 1) cell.className = "health " + String(p.health).split(" ")[0];
      tr.append(cell);
    });
    tbody.append(tr);
  }
  table.append(thead, tbody);
  const wrap = document.createElement("div");
  wrap.className = "scroll";
  wrap.append(table);
  box.append(wrap);
}

function showWarnings(warnings) {
  const list = $("warnings");
  list.replaceChildren();
  for (const w of warnings) {
    const li = document.createElement("li");
    li.textContent = w.message || JSON.stringify(w.warning);
    list.append(li);
  }
}

// ---------------------------------------------------------------- CSV of what is on screen

function csvText() {
  const { keys, state } = current;
  // Numbers stay numbers: the cost unrounded, the share in percent as shown (empty when the total is 0).
  const lines = [keys.map(csvField).concat([state.costMetric, "sharePercent", "resources", "lineItems"]).join(",")];
  for (const row of sortedRows()) {
    const cells = keys.map((k) => csvField(row.properties[k] ?? ""));
    const percent = share(row.totalCost, current.total);
    cells.push(String(row.totalCost), percent === "-" ? "" : percent.replace(" %", ""), String(row.resources), String(row.lineItems));
    lines.push(cells.join(","));
  }
  return lines.join("\n") + "\n";
}

function downloadCsv() {
  if (!current) return;
  const { state } = current;
  const name = `kubecur-${state.aggregate.replace(/[^A-Za-z0-9_-]+/g, "_")}-${state.window.replace(/[^A-Za-z0-9_-]+/g, "_")}-${state.costMetric}.csv`;
  const url = URL.createObjectURL(new Blob([csvText()], { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------- start

window.addEventListener("error", (event) => showMessage(`The page failed: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => showMessage(`The page failed: ${event.reason && event.reason.message ? event.reason.message : event.reason}`));

if (typeof uPlot === "undefined") {
  showMessage("The chart library did not load (page/uPlot.iife.min.js).");
}
// Without a window in the URL: the newest billing period that has data (this month on a live
// deployment; a sample's last month), so the first view is never an empty month.
async function start() {
  wirePickers();
  const state = readState();
  if (!new URLSearchParams(location.search).has("window")) {
    try {
      const status = await api("status", "", "Status");
      const served = (status.data || []).filter((p) => p.serving).map((p) => p.period).sort();
      const newest = served[served.length - 1];
      if (newest && /^\d{4}-\d{2}$/.test(newest)) {
        const [year, month] = newest.split("-").map(Number);
        const next = month === 12 ? `${year + 1}-01` : `${year}-${String(month + 1).padStart(2, "0")}`;
        state.window = `${newest}-01T00:00:00Z,${next}-01T00:00:00Z`;
      }
    } catch (err) {
      // The view below asks again and shows the failure.
    }
  }
  go(state, false);
}

start();
