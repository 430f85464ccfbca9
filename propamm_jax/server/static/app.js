// The dashboard: a few pages over the JSON API, switched by the URL's hash.
// Everything shown that came from a team (names, file names, log lines) goes in through
// textContent, never as HTML; reports are shown in a sandboxed iframe.
"use strict";

const state = { token: localStorage.getItem("propamm-token") || "", timer: null };

function $(id) { return document.getElementById(id); }

function showError(message) {
  const p = $("error");
  p.textContent = message || "";
  p.hidden = !message;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

async function getJSON(path) { return (await api(path)).json(); }

function cell(row, text, numeric) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (numeric) td.className = "num";
  row.appendChild(td);
  return td;
}

function fillTable(table, headings, rows) {
  table.replaceChildren();
  const head = table.insertRow();
  for (const h of headings) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  for (const r of rows) {
    const tr = table.insertRow();
    for (const value of r) {
      if (value instanceof Node) { const td = cell(tr, ""); td.appendChild(value); }
      else cell(tr, value, typeof value === "number");
    }
  }
}

function fmt(x, digits) { return typeof x === "number" ? x.toFixed(digits) : ""; }

function jobLink(id) {
  const a = document.createElement("a");
  a.href = "#/job/" + encodeURIComponent(id);
  a.textContent = id.slice(0, 10);
  return a;
}

// ---- upload -------------------------------------------------------------------------
async function loadCompetitions(select, withPractice) {
  const { competitions } = await getJSON("/api/competitions");
  select.replaceChildren();
  if (withPractice) select.add(new Option("practice (your own seeds)", ""));
  for (const c of competitions) {
    select.add(new Option(c.name + " (" + c.simulations + " hidden seeds, " + c.profile + ")", c.id));
  }
  return competitions;
}

function pageUpload() {
  loadCompetitions($("competition"), true).catch((e) => showError(e.message));
  toggleCompetition();
}

function toggleCompetition() {
  const submit = $("kind").value === "submit";
  $("competition-label").hidden = !submit;
  $("config").disabled = submit && $("competition").value !== "";
}

function configFromForm() {
  const config = {};
  for (const key of ["simulations", "steps", "epoch_len", "seed_start", "seed_stride"]) {
    config[key] = Number($(key).value);
  }
  config.profile = $("profile").value;
  config.opponents = $("opponents").value.split(",").map((s) => s.trim()).filter(Boolean);
  return config;
}

async function submitJob(event) {
  event.preventDefault();
  showError("");
  const file = $("source-file").files[0];
  if (!file) { showError("choose a .rs file first"); return; }
  const body = { kind: $("kind").value, sources: [{ name: file.name, text: await file.text() }] };
  const competition = $("kind").value === "submit" ? $("competition").value : "";
  if (competition) body.competition = competition; else body.config = configFromForm();
  try {
    const response = await api("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    location.hash = "#/job/" + (await response.json()).id;
  } catch (e) { showError(e.message); }
}

// ---- one job ------------------------------------------------------------------------
async function pageJob(id) {
  $("job-id").textContent = id;
  $("job-log").textContent = "";
  $("job-state").textContent = "loading";
  $("job-state").className = "";
  $("job-progress-text").textContent = "";
  $("job-done").hidden = true;
  $("job-error").hidden = true;
  let after = 0;
  const poll = async () => {
    try {
      const job = await getJSON("/api/jobs/" + encodeURIComponent(id));
      const { lines } = await getJSON("/api/jobs/" + encodeURIComponent(id) + "/logs?after=" + after);
      for (const l of lines) {
        $("job-log").textContent += new Date(l.at * 1000).toLocaleTimeString() + "  " + l.line + "\n";
        after = l.n;
      }
      showJob(job);
      if (job.state === "done" || job.state === "failed") { stopPolling(); await showFinished(job); }
    } catch (e) { stopPolling(); showError(e.message); }
  };
  stopPolling();
  state.timer = setInterval(poll, 1000);
  await poll();
}

function showJob(job) {
  const s = $("job-state");
  s.textContent = job.state;
  s.className = "state-" + job.state;
  $("job-progress").max = Math.max(1, job.progress.total);
  $("job-progress").value = job.progress.done;
  $("job-progress-text").textContent = job.progress.done + " / " + job.progress.total;
  const t = job.timings;
  $("job-timings").textContent = job.kind + " of " + job.sources.join(", ") + " \u00b7 queued " +
    t.queued_s + " s" + (t.running_s !== null ? " \u00b7 running " + t.running_s + " s" : "") +
    " \u00b7 attempt " + job.attempts;
  if (job.error) { $("job-error").textContent = job.error; $("job-error").hidden = false; }
}

async function showFinished(job) {
  if (job.state !== "done") return;
  $("job-done").hidden = false;
  if (job.kind === "validate") {
    fillTable($("job-summary"), ["File", "Verdict"], job.summary.map((r) => [r.file, r.ok ? "PASS" : "FAIL"]));
  } else {
    fillTable($("job-summary"), ["Strategy", "File", "Mean edge", "Std edge", "vs normalizer", "Final capital %"],
      job.summary.map((r) => [r.strategy, r.file, fmt(r.mean_edge, 4), fmt(r.std_edge, 4),
                              fmt(r.vs_norm, 4), fmt(r.final_cap_pct, 2)]));
  }
  const frame = $("job-report");
  frame.setAttribute("sandbox", "");
  try {
    frame.srcdoc = await (await api("/api/jobs/" + encodeURIComponent(job.id) + "/report")).text();
    frame.hidden = false;
  } catch (e) { frame.hidden = true; }
  for (const button of $("job-downloads").querySelectorAll("button")) {
    button.onclick = () => download(job.id, button.dataset.format);
  }
}

async function download(id, format) {
  try {
    const blob = await (await api("/api/jobs/" + encodeURIComponent(id) + "/results?format=" + format)).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = id + "." + format;
    a.click();
    URL.revokeObjectURL(a.href);
  } catch (e) { showError(e.message); }
}

// ---- the team's jobs ----------------------------------------------------------------
async function pageJobs() {
  const { jobs } = await getJSON("/api/jobs");
  fillTable($("jobs-table"), ["Job", "Kind", "State", "Sources", "Competition", "Score", "Created"],
    jobs.map((j) => [jobLink(j.id), j.kind, j.state, j.sources.join(", "), j.competition ? "yes" : "",
                     fmt(j.score, 4), new Date(j.timings.created * 1000).toLocaleString()]));
}

// ---- leaderboard --------------------------------------------------------------------
async function pageLeaderboard() {
  const select = $("board-competition");
  const competitions = await loadCompetitions(select, false);
  if (!competitions.length) { $("board-meta").textContent = "no competition yet"; return; }
  select.onchange = () => showBoard(select.value);
  await showBoard(select.value);
}

async function showBoard(id) {
  const board = await getJSON("/api/leaderboard?competition=" + encodeURIComponent(id));
  const c = board.competition;
  $("board-meta").textContent = c.profile + " \u00b7 " + c.simulations + " hidden seeds x " + c.steps +
    " steps \u00b7 opponents: " + (c.opponents.join(", ") || "none");
  fillTable($("leaderboard-table"), ["Rank", "Team", "Strategy", "Mean edge", "Receipt"],
    board.rows.map((r) => {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = r.receipt ? "sha256 " + r.receipt.strategies[0].source_sha256.slice(0, 12) : "";
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(r.receipt, null, 2);
      details.append(summary, pre);
      return [r.rank, r.team, r.strategy, fmt(r.mean_edge, 4), details];
    }));
}

// ---- compare ------------------------------------------------------------------------
async function pageCompare() {
  const { jobs } = await getJSON("/api/jobs");
  const done = jobs.filter((j) => j.state === "done" && j.kind !== "validate");
  for (const id of ["compare-a", "compare-b"]) {
    const select = $(id);
    select.replaceChildren();
    for (const j of done) select.add(new Option(j.id.slice(0, 10) + " " + j.sources.join(", ") + " (" + fmt(j.score, 3) + ")", j.id));
  }
  if (done.length > 1) $("compare-b").selectedIndex = 1;
  $("compare-go").onclick = compare;
}

async function compare() {
  const [a, b] = await Promise.all([getJSON("/api/jobs/" + $("compare-a").value),
                                    getJSON("/api/jobs/" + $("compare-b").value)]);
  const rows = [];
  const byFile = (job) => Object.fromEntries(job.summary.map((r) => [r.file, r]));
  const ra = byFile(a), rb = byFile(b);
  for (const file of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
    const x = ra[file], y = rb[file];
    rows.push([file, fmt(x && x.mean_edge, 4), fmt(y && y.mean_edge, 4),
               x && y ? fmt(y.mean_edge - x.mean_edge, 4) : ""]);
  }
  fillTable($("compare-table"), ["Strategy file", "Mean edge A", "Mean edge B", "B - A"], rows);
}

// ---- routing ------------------------------------------------------------------------
function stopPolling() { if (state.timer) { clearInterval(state.timer); state.timer = null; } }

async function route() {
  stopPolling();
  showError("");
  const [, page, arg] = (location.hash || "#/upload").split("/");
  for (const section of document.querySelectorAll(".page")) section.hidden = true;
  const pages = { upload: pageUpload, job: pageJob, jobs: pageJobs, leaderboard: pageLeaderboard,
                  compare: pageCompare };
  const show = pages[page] ? page : "upload";
  $("page-" + show).hidden = false;
  if (!state.token) { showError("enter your team's API token above"); return; }
  try { await pages[show](arg && decodeURIComponent(arg)); } catch (e) { showError(e.message); }
}

async function whoami() {
  $("whoami").textContent = "";
  if (!state.token) return;
  try {
    const me = await getJSON("/api/me");
    $("whoami").textContent = "team " + me.team + (me.admin ? " (admin)" : "");
  } catch (e) { $("whoami").textContent = e.message; }
}

$("token").value = state.token;
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem("propamm-token", state.token);
  whoami();
  route();
});
$("job-form").addEventListener("submit", submitJob);
$("kind").addEventListener("change", toggleCompetition);
$("competition").addEventListener("change", toggleCompetition);
window.addEventListener("hashchange", route);
whoami();
route();
