// HWUT's web page: a thin view of the API (/apiv1) with the user's own credentials.
// Views live in the URL fragment (#/jobs, #/jobs/7, #/boards, #/submit, #/signin).
// Nothing the API returns is put into the page as HTML: text nodes only.
"use strict";

const API = "/apiv1";
const ENDED = ["FINISHED", "CANCELED", "ERROR"];
const PAGE = 20;
const LOG_SHOWN = 2 * 1024 * 1024; // bytes of log kept on the page; the download has all
const POLL_MS = 500;

const session = {
  get auth() { return sessionStorage.getItem("hwut.auth"); },
  set auth(v) { v ? sessionStorage.setItem("hwut.auth", v) : sessionStorage.removeItem("hwut.auth"); },
  user: null,
};
let cleanups = [];

class ApiError extends Error {
  constructor(status, title, description) {
    super(description || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

async function api(path, options = {}) {
  // X-HWUT-Page: a 401 then challenges for a token only, so the browser opens no
  // password dialog of its own and the page shows the API's message
  const headers = Object.assign({ "X-HWUT-Page": "1" }, options.headers || {});
  if (session.auth) headers.Authorization = session.auth;
  let resp;
  try {
    resp = await fetch(API + path, Object.assign({}, options, { headers }));
  } catch (err) {
    throw new ApiError(0, "Unreachable", "The server cannot be reached; check the connection and retry.");
  }
  if (!resp.ok && resp.status !== 206) {
    let body = {};
    try { body = await resp.json(); } catch (e) { /* not JSON: keep the status */ }
    if (resp.status === 401 && session.user) { signOut("Your sign-in is no longer accepted: " + (body.description || "")); }
    throw new ApiError(resp.status, body.title, body.description || `${resp.status} ${resp.statusText}`);
  }
  return resp;
}
const json = async (path, options) => (await api(path, options)).json();

// -- DOM helpers -------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}
const view = () => document.getElementById("view");
const show = (...nodes) => view().replaceChildren(...nodes);
let routeGen = 0;
// A view's own show: it renders only while its route is still the current one, so a view
// still waiting for the server when the user moves on never replaces the next view.
const viewShow = () => { const gen = routeGen; return (...nodes) => { if (gen === routeGen) show(...nodes); }; };
const errorBox = (err) => h("p", { class: "error", role: "alert" }, err instanceof ApiError ? err.message : String(err));
const statusBadge = (s) => h("span", { class: `status ${s}`, "data-status": s }, s);
const dash = (v) => (v === null || v === undefined || v === "" ? "—" : String(v));

function every(ms, fn) {
  let stopped = false, timer = null;
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { again = true; }
    if (!stopped && again) timer = setTimeout(tick, ms);
  };
  tick();
  cleanups.push(() => { stopped = true; clearTimeout(timer); });
}

async function download(path, name) {
  const resp = await api(path);
  const url = URL.createObjectURL(await resp.blob());
  const a = h("a", { href: url, download: name });
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// -- sign-in ---------------------------------------------------------------------------
function signOut(why) {
  session.auth = null; session.user = null;
  location.hash = "#/signin";
  if (why) sessionStorage.setItem("hwut.why", why);
}

function signInView() {
  const why = sessionStorage.getItem("hwut.why");
  sessionStorage.removeItem("hwut.why");
  const msg = h("div", { id: "signin-error" }, why ? errorBox(why) : null);
  const form = h("form", { class: "stack", id: "signin" },
    h("label", {}, "User name", h("input", { name: "user", autocomplete: "username" })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password" })),
    h("p", { class: "muted" }, "…or an API token instead (hwut users token NAME prints one):"),
    h("label", {}, "API token", h("input", { name: "token", autocomplete: "off" })),
    h("button", { class: "primary", type: "submit" }, "Sign in"), msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const token = String(f.get("token") || "").trim();
    const user = String(f.get("user") || "");
    if (!token && !user) { msg.replaceChildren(errorBox("Give a user name and password, or a token.")); return; }
    session.auth = token ? `Bearer ${token}`
      : "Basic " + btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${f.get("password") || ""}`)));
    try {
      session.user = await json("/auth_test");
      location.hash = "#/jobs";
    } catch (err) {
      session.auth = null;
      msg.replaceChildren(errorBox(err));
    }
  });
  show(h("h1", {}, "Sign in"), form);
}

// -- job list --------------------------------------------------------------------------
async function jobsView(params) {
  const show = viewShow();
  const isAdmin = session.user.role === "admin";
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const filters = { status: params.get("status") || "", board: params.get("board") || "", owner: params.get("owner") || "" };
  const q = new URLSearchParams({ limit: PAGE + 1, offset, extended: "true" });
  for (const [k, v] of Object.entries(filters)) if (v && (k !== "owner" || isAdmin)) q.set(k, v);
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, "Status", h("select", { name: "status" },
      ["", "WAITING", "QUEUED", "RUNNING", "FINISHED", "CANCELED", "ERROR"].map((s) =>
        h("option", { value: s, selected: s === filters.status }, s || "any")))),
    h("label", {}, "Board", h("input", { name: "board", value: filters.board, placeholder: "any" })),
    isAdmin ? h("label", {}, "Owner", h("input", { name: "owner", value: filters.owner, placeholder: "anyone" })) : null,
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    location.hash = `#/jobs?${p}`;
  });
  show(h("h1", {}, isAdmin ? "Jobs (all users)" : "Your jobs"), form, h("p", { class: "muted" }, "Loading…"));
  let jobs;
  try { jobs = await json(`/jobs?${q}`); } catch (err) { show(h("h1", {}, "Jobs"), form, errorBox(err)); return; }
  const more = jobs.length > PAGE;
  jobs = jobs.slice(0, PAGE);
  const go = (o) => { const p = new URLSearchParams(params); p.set("offset", o); location.hash = `#/jobs?${p}`; };
  const any = filters.status || filters.board || filters.owner;
  const table = jobs.length ? h("table", { id: "jobs" },
    h("thead", {}, h("tr", {}, ["Job", "Status", "Board", "Owner", "Created (UTC)", "Virtual time used", "Comment"].map((t) => h("th", {}, t)))),
    h("tbody", {}, jobs.map((j) => h("tr", { class: "link", "data-job": j.id, onclick: () => { location.hash = `#/jobs/${j.id}`; } },
      h("td", {}, h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)), h("td", {}, statusBadge(j.status)),
      h("td", {}, dash(j.board)), h("td", {}, j.owner), h("td", {}, j.created.slice(0, 19)),
      h("td", {}, j.time_used_seconds === null || j.time_used_seconds === undefined ? "—" : `${(+j.time_used_seconds).toFixed(3)} s`),
      h("td", {}, dash(j.comment))))))
    : h("p", { class: "notice", id: "empty" }, offset ? "No more jobs." :
        any ? "No job matches these filters." : h("span", {}, "No jobs yet. ", h("a", { href: "#/submit" }, "Submit one"), "."));
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE)) }, "← Newer"),
    h("span", { class: "muted" }, jobs.length ? `${offset + 1}–${offset + jobs.length}` : ""),
    h("button", { type: "button", disabled: !more, onclick: () => go(offset + PAGE) }, "Older →"));
  show(h("h1", {}, isAdmin ? "Jobs (all users)" : "Your jobs"), form, table, pager);
}

// -- one job ---------------------------------------------------------------------------
function fields(job) {
  const rows = [
    ["Status", statusBadge(job.status)],
    ["Board", dash(job.board)], ["Owner", job.owner], ["Comment", dash(job.comment)],
    ["Created (UTC)", job.created], ["Started (UTC)", dash(job.started)], ["Finished (UTC)", dash(job.finished)],
    ["Virtual time used", job.time_used_seconds === null || job.time_used_seconds === undefined ? "—"
      : `${(+job.time_used_seconds).toFixed(6)} s of ${job.duration_limit_seconds} s`],
    ["Stop reason", dash(job.stop_reason)], ["Exit code", dash(job.exit_code)], ["Detail", dash(job.detail)],
  ];
  if (job.status === "WAITING") rows.splice(1, 0, ["Queue position", dash(job.queue_position)]);
  if (job.verdict) rows.splice(1, 0, ["Verdict", `${job.verdict}${job.verdict_reason ? `: ${job.verdict_reason}` : ""}`]);
  if (job.started && job.finished) {
    const wall = (Date.parse(job.finished.replace(" ", "T") + "Z") - Date.parse(job.started.replace(" ", "T") + "Z")) / 1000;
    if (!Number.isNaN(wall)) rows.push(["Wall time", `${wall.toFixed(3)} s`]);
  }
  return h("dl", { class: "fields", id: "job-fields" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)]));
}

function summaryTable(summary) {
  const names = Object.keys(summary.signals || {});
  if (!names.length) return h("p", { class: "muted" }, summary.error ? `The trace cannot be read: ${summary.error}` : "No signal changed.");
  const t = (s) => (s === null || s === undefined ? "—" : HWUTWave.fmtTime(s));
  return h("table", { id: "trace-summary" },
    h("thead", {}, h("tr", {}, ["Signal", "Edges / bytes", "First change", "Last change", "Frequency", "Duty cycle", "Ends"].map((x) => h("th", {}, x)))),
    h("tbody", {}, names.map((n) => {
      const s = summary.signals[n];
      return h("tr", { "data-signal": n }, h("td", {}, n), h("td", {}, s.width === 1 ? String(s.edges) : `${s.values} bytes`),
        h("td", {}, t(s.first_change_s)), h("td", {}, t(s.last_change_s)),
        h("td", {}, s.frequency_hz ? `${+s.frequency_hz.toPrecision(6)} Hz` : "—"),
        h("td", {}, s.duty_cycle !== null && s.duty_cycle !== undefined ? `${(s.duty_cycle * 100).toFixed(1)} %` : "—"),
        h("td", {}, dash(s.final)));
    })));
}

async function jobView(id) {
  const show = viewShow();
  show(h("h1", {}, `Job #${id}`), h("p", { class: "muted" }, "Loading…"));
  let job;
  try { job = await json(`/jobs/${id}`); } catch (err) { show(h("h1", {}, `Job #${id}`), errorBox(err)); return; }
  const mine = "board" in job; // the extended view: its owner, or an admin
  const isAdmin = session.user.role === "admin";
  const head = h("div", { id: "job-head" }, fields(job));
  const actionMsg = h("div", { id: "action-message" });
  const logBox = h("pre", { id: "log" });
  const logNote = h("p", { class: "muted", id: "log-note" }, "Waiting for the log…");
  const extras = h("div", { id: "job-extras" },
    h("h2", {}, "Pin trace"), h("p", { class: "muted" }, "The pin trace is written when the run ends."));
  if (!mine) {
    // Others see that the job exists, nothing of it: the API says why.
    let refusal = null;
    try { await api(`/jobs/${id}/log`); } catch (err) { refusal = err; }
    show(h("h1", {}, `Job #${id}`),
      h("dl", { class: "fields", id: "job-fields" },
        [["Status", statusBadge(job.status)], ["Owner", job.owner], ["Created (UTC)", job.created]]
          .map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)])),
      h("div", { id: "refused" }, errorBox(refusal || "This job belongs to another user.")));
    return;
  }
  const cancelButton = h("button", { class: "danger", type: "button", id: "cancel", onclick: async () => {
    cancelButton.disabled = true;
    try { await api(`/jobs/${id}`, { method: "DELETE" }); actionMsg.replaceChildren(h("p", { class: "notice" }, "Cancel requested.")); }
    catch (err) { actionMsg.replaceChildren(errorBox(err)); cancelButton.disabled = false; }
  } }, "Cancel job");
  const dl = (label, path, name) => h("button", { type: "button", "data-download": name, onclick: async () => {
    try { await download(path, name); } catch (err) { actionMsg.replaceChildren(errorBox(err)); }
  } }, label);
  const actions = h("div", { class: "actions", id: "actions" });
  const renderActions = () => actions.replaceChildren(...[
    ENDED.includes(job.status) ? null : cancelButton,
    dl("Executable", `/jobs/${id}/executable`, `job-${id}.${job.format || "bin"}`),
    job.filename_log ? dl("UART log", `/jobs/${id}/log`, `job-${id}-uart.log`) : null,
    job.filename_other ? dl("ITM trace", `/jobs/${id}/other`, `job-${id}-itm.bin`) : null,
    job.filename_trace ? dl("Pin trace (VCD)", `/jobs/${id}/trace.vcd`, `job-${id}.vcd`) : null,
    isAdmin && job.filename_infra ? dl("Infrastructure log", `/jobs/${id}/infra_log`, `job-${id}-infra.log`) : null,
  ].filter(Boolean));
  renderActions();
  show(h("h1", {}, `Job #${id}`), head, actions, actionMsg, h("h2", {}, "UART log"), logNote, logBox, extras);

  // the log, followed with ?offset= as it grows
  const decoder = new TextDecoder();
  let offset = 0, shown = 0;
  every(POLL_MS, async () => {
    let resp;
    try { resp = await api(`/jobs/${id}/log?offset=${offset}`); }
    catch (err) {
      if (err.status === 404) {
        logNote.textContent = ENDED.includes(job.status) ? "This job has no log: it never ran." : `No log yet: the job is ${job.status}.`;
        return !ENDED.includes(job.status);
      }
      logNote.replaceChildren(errorBox(err));
      return true;
    }
    const data = new Uint8Array(await resp.arrayBuffer());
    const state = resp.headers.get("X-HWUT-Job-Status");
    offset += data.length;
    if (data.length && shown < LOG_SHOWN) {
      const part = data.subarray(0, LOG_SHOWN - shown);
      shown += part.length;
      logBox.append(decoder.decode(part, { stream: true }));
      logBox.scrollTop = logBox.scrollHeight;
    }
    const ended = ENDED.includes(state);
    logNote.textContent = `${offset} bytes` + (shown < offset ? ` (the first ${shown} shown; download the log for all)` : "")
      + (ended ? "" : " — streaming while the job runs…");
    if (!offset && ended) logNote.textContent = "The board printed nothing.";
    return !ended || data.length > 0;
  });

  // the job's status until it ends, then what it left behind
  let lastStatus = job.status;
  every(1000, async () => {
    if (!ENDED.includes(job.status)) {
      job = await json(`/jobs/${id}`);
      head.replaceChildren(fields(job));
      if (job.status !== lastStatus) { lastStatus = job.status; renderActions(); }
      if (!ENDED.includes(job.status)) return true;
    }
    renderActions();
    await showResults(job, extras, isAdmin);
    return false;
  });
}

async function showResults(job, extras, isAdmin) {
  const id = job.id;
  const parts = [h("h2", {}, "Pin trace")];
  const wave = h("div", { class: "wave", id: "wave" });
  if (job.filename_trace) {
    parts.push(job.trace_summary ? summaryTable(job.trace_summary) : null, h("p"), wave);
    try {
      const text = await (await api(`/jobs/${id}/trace.vcd`)).text();
      HWUTWave.draw(wave, HWUTWave.parse(text));
    } catch (err) { wave.replaceChildren(errorBox(err)); }
  } else {
    parts.push(h("p", { class: "notice", id: "no-trace" }, job.trace === "none" ? "No pin trace: the job was submitted with trace=none."
      : "No pin trace: the run kept none (its backend may not trace pins, or it never ran)."));
  }
  parts.push(h("h2", {}, "ITM trace"));
  if (job.filename_other) {
    try {
      const text = new TextDecoder().decode(await (await api(`/jobs/${id}/other`)).arrayBuffer());
      parts.push(h("pre", { id: "itm" }, text));
    } catch (err) { parts.push(errorBox(err)); }
  } else parts.push(h("p", { class: "muted", id: "no-itm" }, "The firmware wrote nothing to the ITM."));
  if (isAdmin) {
    parts.push(h("h2", {}, "Infrastructure log (admins)"));
    if (job.filename_infra) {
      try { parts.push(h("pre", { id: "infra" }, await (await api(`/jobs/${id}/infra_log`)).text())); }
      catch (err) { parts.push(errorBox(err)); }
    } else parts.push(h("p", { class: "muted" }, "None."));
  }
  extras.replaceChildren(...parts.filter(Boolean));
  if (job.filename_trace && wave.childNodes.length === 0) wave.replaceChildren(h("p", { class: "muted" }, "Loading the trace…"));
}

// -- boards ----------------------------------------------------------------------------
async function boardsView() {
  const show = viewShow();
  show(h("h1", {}, "Boards"), h("p", { class: "muted" }, "Loading…"));
  let boards;
  try { boards = await json("/targets/boards?extended=true"); } catch (err) { show(h("h1", {}, "Boards"), errorBox(err)); return; }
  if (!boards.length) { show(h("h1", {}, "Boards"), h("p", { class: "notice" }, "This server offers no boards yet: its config names none.")); return; }
  show(h("h1", {}, "Boards"), h("div", { id: "boards" }, boards.map((b) => h("section", { class: "board", "data-board": b.name },
    h("h2", {}, b.name, " ", h("span", { class: b.available ? "ok" : "bad" }, b.available ? "available" : "unavailable")),
    b.microcontroller ? h("p", { class: "muted" }, b.microcontroller.description) : null,
    b.unavailable_reason ? h("p", { class: "error" }, b.unavailable_reason) : null,
    (b.instances || []).length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Instance", "Backend", "State", "Job", "Health"].map((t) => h("th", {}, t)))),
      h("tbody", {}, b.instances.map((i) => h("tr", {},
        h("td", {}, i.name), h("td", {}, i.backend), h("td", {}, i.state),
        h("td", {}, i.job ? h("a", { href: `#/jobs/${i.job}` }, `#${i.job}`) : "—"),
        h("td", { class: i.availability && i.availability.ok ? "ok" : "bad" },
          i.availability ? (i.availability.ok ? (i.availability.detail || "ok") : i.availability.detail) : "—")))))
      : h("p", { class: "muted" }, "No instances.")))));
}

// -- submit ----------------------------------------------------------------------------
async function submitView() {
  const show = viewShow();
  const msg = h("div", { id: "submit-message" });
  const boardSelect = h("select", { name: "board", required: true });
  const form = h("form", { class: "stack", id: "submit" },
    h("label", {}, "Executable (ELF, Intel HEX or BIN)", h("input", { type: "file", name: "file", required: true })),
    h("label", {}, "Board", boardSelect),
    h("label", {}, "Time limit (virtual seconds)", h("input", { type: "number", name: "limit", min: 1, value: 10 })),
    h("label", {}, "Comment", h("input", { name: "comment", maxlength: 1000 })),
    h("label", {}, "Console input (sent once the firmware listens)", h("input", { name: "input" })),
    h("label", {}, "Button presses (e.g. B1@0.5-0.7, several separated by spaces)", h("input", { name: "press" })),
    h("label", {}, "Pin trace: default, none, or signals (LD2,PA6,USART2_TX)", h("input", { name: "trace", placeholder: "default" })),
    h("fieldset", { id: "criteria" }, h("legend", {}, "Verdict (optional): the job passes or fails by its log"),
      h("label", {}, "Texts that must appear (one per line)", h("textarea", { name: "expect", rows: 2 })),
      h("label", {}, "Texts that fail the job at once (one per line)", h("textarea", { name: "fail", rows: 2 })),
      h("label", {}, "Expected exit code", h("input", { type: "number", name: "exit_code" }))),
    h("button", { class: "primary", type: "submit" }, "Submit"), msg);
  show(h("h1", {}, "Submit a job"), form);
  try {
    const boards = await json("/targets/boards");
    if (!boards.length) msg.replaceChildren(h("p", { class: "notice" }, "This server offers no boards yet."));
    boardSelect.replaceChildren(...boards.map((b) => h("option", { value: b.name }, b.name)));
  } catch (err) { msg.replaceChildren(errorBox(err)); }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const file = f.get("file");
    if (!file || !file.size) { msg.replaceChildren(errorBox("Choose the executable to run.")); return; }
    const q = new URLSearchParams({ board: f.get("board") || "" });
    if (f.get("limit")) q.set("duration_limit_seconds", f.get("limit"));
    for (const k of ["comment", "input", "trace"]) if (f.get(k)) q.set(k, f.get(k));
    for (const p of String(f.get("press") || "").split(/\s+/)) if (p) q.append("press", p);
    for (const k of ["expect", "fail"]) for (const line of String(f.get(k) || "").split("\n")) if (line.trim()) q.append(k, line.trim());
    if (f.get("exit_code")) q.set("exit_code", f.get("exit_code"));
    msg.replaceChildren(h("p", { class: "muted" }, "Uploading…"));
    try {
      const job = await json(`/jobs/submit?${q}`, { method: "PUT", body: file, headers: { "Content-Type": "application/octet-stream" } });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) { msg.replaceChildren(errorBox(err)); }
  });
}

// -- routing ---------------------------------------------------------------------------
async function route() {
  const gen = ++routeGen;
  cleanups.forEach((f) => f()); cleanups = [];
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  if (!session.auth && path !== "/signin") { location.hash = "#/signin"; return; }
  if (session.auth && !session.user) {
    try { session.user = await json("/auth_test"); } catch (err) { signOut(err.message); return; }
    if (gen !== routeGen) return;   // the user moved on meanwhile: the newer route renders
  }
  const signedIn = Boolean(session.user);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? `${session.user.user} (${session.user.role})` : "";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("current", path.startsWith(`/${a.dataset.nav}`));
  const m = /^\/jobs\/(\d+)$/.exec(path);
  if (path === "/signin") signInView();
  else if (m) await jobView(Number(m[1]));
  else if (path === "/boards") await boardsView();
  else if (path === "/submit") await submitView();
  else await jobsView(params);
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
