/* hopper-web's dashboard: plain JavaScript, no library, no inline script (the CSP forbids it). Every page
 * is index.html; this script reads location.pathname and draws the page from the /v1 API. Logged in with a
 * hopper token (POST /login sets an HttpOnly, SameSite=Strict cookie); every state change sends the
 * session's CSRF token in X-CSRF-Token. Text is always set with textContent: nothing from the API is parsed
 * as HTML. */
"use strict";

const S = { csrf: null, who: null, es: null };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

async function api(method, path, body) {
  const h = { "Accept": "application/json" };
  if (method !== "GET") h["X-CSRF-Token"] = S.csrf || "";
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers: h, credentials: "same-origin",
                                body: body !== undefined ? JSON.stringify(body) : undefined });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) {
    if (r.status === 401 && path !== "/login") { go("/login"); }
    throw new Error((j.error && (j.error.code + ": " + j.error.message)) || ("HTTP " + r.status));
  }
  return j;
}

function can(scope) {
  const s = (S.who && S.who.scopes) || [];
  return s.includes("admin") || s.includes(scope);
}

function when(t) {
  if (!t) return "";
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function age(t) {
  if (!t) return "";
  const s = Math.max(0, Date.now() / 1000 - Number(t));
  return s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
}

function table(cols, rows, id) {
  return el("table", { id }, el("thead", {}, el("tr", {}, cols.map(c => el("th", {}, c[0])))),
            el("tbody", {}, rows.map(r => el("tr", {}, cols.map(c => el("td", {}, c[1](r)))))));
}

function flash(msg, bad) {
  const f = el("p", { class: bad ? "flash bad" : "flash", id: "flash" }, msg);
  const old = document.getElementById("flash");
  if (old) old.remove();
  document.getElementById("main").prepend(f);
}

function jobLink(id) { return el("a", { href: "/jobs/" + encodeURIComponent(id), class: "job" }, id); }

function go(path) {
  if (location.pathname !== path) history.pushState({}, "", path);
  route();
}

/* --- pages --- */

async function pageLogin(main) {
  const input = el("input", { type: "password", id: "token", name: "token", placeholder: "hop_…", autocomplete: "off", size: 64 });
  const form = el("form", { id: "login-form" }, el("h1", {}, "Log in"),
                  el("p", {}, "With a hopper token (", el("code", {}, "hopperctl token create NAME --scopes …"), ")."),
                  input, " ", el("button", { type: "submit", id: "login" }, "log in"));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/login", { token: input.value });
      S.csrf = r.csrf; S.who = r.identity; input.value = "";
      header(); go("/");
    } catch (e) { flash(e.message, true); }
  });
  main.append(form);
}

async function pageOverview(main) {
  const [q, st, failed, dead] = await Promise.all([api("GET", "/v1/queues"), api("GET", "/v1/stats"),
    api("GET", "/v1/jobs?state=failed&limit=10"), api("GET", "/v1/dead?limit=10")]);
  const tp = st.throughput || {};
  main.append(el("h1", {}, "Overview"),
    el("p", { id: "throughput" }, "Finished in the last minute: ", String(tp.finished_1m || 0), " (",
       (tp.per_s_1m || 0).toFixed(2), "/s) · running now: ", String(st.running || 0)),
    el("h2", {}, "Queues"),
    table([["queue", r => el("a", { href: "/jobs?queue=" + encodeURIComponent(r.name) }, r.name)],
           ["waiting", r => r.length], ["scheduled", r => r.scheduled], ["in flight", r => r.inflight],
           ["dead", r => r.dead ?? ""], ["paused", r => r.paused ? "paused" : ""]], q.queues, "queues"),
    el("h2", {}, "Nodes"),
    table([["node", r => r.node], ["host", r => r.host], ["running", r => r.running], ["heartbeat", r => age(r.updated_at) + " ago"],
           ["version", r => r.version], ["queues", r => r.queues]], st.nodes || [], "nodes"),
    el("h2", {}, "Recent failures"),
    table([["job", r => jobLink(r.id)], ["type", r => r.type], ["queue", r => r.queue], ["state", r => r.state],
           ["error", r => r.error || ""], ["updated", r => when(r.updated_at)]],
          [...(failed.jobs || []), ...(dead.jobs || [])].slice(0, 15), "failures"));
}

function jobsTable(jobs, withRetry) {
  const cols = [["job", r => jobLink(r.id)], ["type", r => r.type], ["queue", r => r.queue],
                ["state", r => el("span", { class: "state " + r.state }, r.state)],
                ["progress", r => el("progress", { max: 100, value: r.progress || 0 })], ["attempt", r => r.attempt],
                ["owner", r => r.owner || ""], ["enqueued", r => when(r.enqueued_at)]];
  if (withRetry) {
    cols.splice(4, 2, ["error", r => r.error || ""]);
    if (can("submit")) cols.push(["", r => el("button", { class: "retry", "data-job": r.id, on: { click: async ev => {
      try { await api("POST", "/v1/jobs/" + encodeURIComponent(r.id) + "/retry"); ev.target.closest("tr").remove();
            flash("job " + r.id + " sent back to " + r.queue); } catch (e) { flash(e.message, true); } } } }, "retry")]);
  }
  return table(cols, jobs, "jobs");
}

async function pageJobs(main, dead) {
  const p = new URLSearchParams(location.search);
  const form = el("form", { id: "filter" });
  for (const f of dead ? [] : ["state", "queue", "type", "owner"])
    form.append(el("label", {}, f, " ", el("input", { name: f, value: p.get(f) || "", size: 12 })), " ");
  form.append(el("label", {}, "per page ", el("input", { name: "limit", value: p.get("limit") || "25", size: 4 })), " ",
              el("button", { type: "submit" }, "show"));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    go((dead ? "/dead" : "/jobs") + "?" + q.toString());
  });
  const q = new URLSearchParams();
  for (const k of ["state", "queue", "type", "owner", "limit", "cursor"]) if (p.get(k)) q.set(k, p.get(k));
  if (!q.get("limit")) q.set("limit", "25");
  const r = await api("GET", (dead ? "/v1/dead?" : "/v1/jobs?") + q.toString());
  main.append(el("h1", {}, dead ? "Dead jobs" : "Jobs"), form, jobsTable(r.jobs, dead));
  if (dead && can("submit") && r.jobs.length)
    main.append(el("p", {}, el("button", { id: "retry-all", on: { click: async () => {
      let n = 0;
      for (const j of r.jobs) { try { await api("POST", "/v1/jobs/" + encodeURIComponent(j.id) + "/retry"); n++; } catch (e) { /* next */ } }
      flash(n + " jobs retried"); route(); } } }, "retry all " + r.jobs.length + " shown")));
  if (r.cursor) {
    q.set("cursor", r.cursor);
    main.append(el("p", {}, el("a", { href: (dead ? "/dead?" : "/jobs?") + q.toString(), id: "next" }, "next page →")));
  }
}

function kv(rows) {
  return el("dl", { class: "kv" }, rows.filter(r => r[1] !== undefined && r[1] !== null && r[1] !== "")
    .flatMap(r => [el("dt", {}, r[0]), el("dd", { id: "f-" + r[0] }, r[1])]));
}

async function pageJob(main, id) {
  const job = await api("GET", "/v1/jobs/" + encodeURIComponent(id));
  const bar = el("progress", { id: "progress", max: 100, value: job.progress || 0 });
  const pct = el("span", { id: "pct" }, (job.progress || 0) + "%");
  const stage = el("span", { id: "stage" }, job.stage || "");
  const state = el("span", { id: "state", class: "state " + job.state }, job.state);
  const buttons = el("p", { id: "actions" });
  const terminal = s => ["succeeded", "failed", "dead", "cancelled"].includes(s);
  let drawn = null;
  function drawButtons(s) {
    if (s === drawn) return; /* the stream replays stored events: keep the buttons the user may be clicking */
    drawn = s;
    buttons.textContent = "";
    if (can("cancel") && !terminal(s))
      buttons.append(el("button", { id: "cancel", on: { click: async () => {
        try { const r = await api("POST", "/v1/jobs/" + encodeURIComponent(id) + "/cancel"); flash("cancelled (was " + r.was + ")"); }
        catch (e) { flash(e.message, true); } } } }, "cancel"));
    if (can("submit") && (s === "failed" || s === "dead"))
      buttons.append(el("button", { id: "retry", on: { click: async () => {
        try { await api("POST", "/v1/jobs/" + encodeURIComponent(id) + "/retry"); flash("sent back to its queue"); route(); }
        catch (e) { flash(e.message, true); } } } }, "retry"));
  }
  drawButtons(job.state);
  const details = el("div", { id: "details" });
  main.append(el("h1", {}, "Job ", el("code", {}, id)), el("p", {}, state, " ", bar, " ", pct, " ", stage), buttons, details);
  async function drawDetails() {
    const j = await api("GET", "/v1/jobs/" + encodeURIComponent(id));
    details.textContent = "";
    details.append(kv([["type", j.type], ["queue", j.queue], ["owner", j.owner], ["attempt", j.attempt + " / " + j.max_attempts],
                       ["created", when(j.created_at)], ["started", when(j.started_at)], ["finished", when(j.finished_at)],
                       ["node", j.node], ["error", j.error], ["message", j.message]]));
    if (j.result !== undefined) details.append(el("h2", {}, "Result"), el("pre", { id: "result" }, JSON.stringify(j.result, null, 2)));
    const logs = await api("GET", "/v1/jobs/" + encodeURIComponent(id) + "/logs?limit=200").catch(() => null);
    if (!logs) return;
    details.append(el("h2", {}, "Attempts"),
      table([["#", r => r.attempt], ["state", r => r.state], ["node", r => r.node], ["started", r => when(r.started_at)],
             ["duration", r => r.duration_ms !== undefined && r.duration_ms !== null ? (r.duration_ms / 1000).toFixed(3) + " s" : ""],
             ["error", r => r.error || ""]], logs.attempts || [], "attempts"));
    if ((logs.nodes_missing || []).length)
      details.append(el("p", { class: "note" }, "Not answering in time, their rows are missing: " + logs.nodes_missing.join(", ")));
    if (logs.scope === "local")
      details.append(el("p", { class: "note" }, "Redis unreachable: the rows of daemon " + logs.node + " only"));
    if ((logs.steps || []).length)
      details.append(el("h2", {}, "Steps"),
        table([["step", r => r.step], ["type", r => r.type], ["try", r => r.step_attempt], ["state", r => r.state],
               ["duration", r => r.duration_ms !== undefined && r.duration_ms !== null ? r.duration_ms.toFixed(1) + " ms" : ""],
               ["output", r => el("code", {}, r.output || "")], ["error", r => r.error || ""]], logs.steps, "steps"));
    details.append(el("h2", {}, "Log"),
      table([["at", r => when(r.at)], ["attempt", r => r.attempt], ["kind", r => r.kind], ["level", r => r.level || ""],
             ["message", r => [r.stage, r.message].filter(Boolean).join(": ")]], (logs.lines || []).slice(-100), "lines"));
  }
  await drawDetails();
  if (S.es) S.es.close();
  const es = new EventSource("/v1/jobs/" + encodeURIComponent(id) + "/events");
  S.es = es;
  const onEvent = ev => {
    const d = JSON.parse(ev.data);
    bar.value = d.progress || 0; pct.textContent = (d.progress || 0) + "%";
    if (d.stage) stage.textContent = d.stage + (d.message ? " — " + d.message : "");
    state.textContent = d.state; state.className = "state " + d.state;
    if (ev.type === "state") drawButtons(d.state);
  };
  es.addEventListener("progress", onEvent);
  es.addEventListener("state", onEvent);
  // A resume after events the daemon no longer holds: show the job's view, reread attempts and log.
  es.addEventListener("lost", ev => {
    const d = JSON.parse(ev.data);
    if (d.job) { onEvent({ type: "state", data: JSON.stringify(d.job) }); }
    drawDetails();
  });
  es.addEventListener("end", ev => { es.close(); onEvent(ev); drawButtons(JSON.parse(ev.data).state); drawDetails(); });
  es.addEventListener("error", () => { if (es.readyState === EventSource.CLOSED) es.close(); });
}

async function pageWorkflows(main) {
  const r = await api("GET", "/v1/workflows");
  main.append(el("h1", {}, "Workflows"),
    table([["name", w => el("a", { href: "/workflows/" + encodeURIComponent(w.name) }, w.name)], ["owner", w => w.owner || ""],
           ["active", w => w.active ? "yes" : "no"], ["description", w => w.description || ""], ["updated", w => when(w.updated_at)]],
          r.workflows, "workflows"));
}

async function pageWorkflow(main, name) {
  const w = await api("GET", "/v1/workflows/" + encodeURIComponent(name));
  const input = el("textarea", { id: "input", rows: 4, cols: 60 }, "{}");
  const hook = el("div", { id: "webhook" });
  main.append(el("h1", {}, "Workflow ", el("code", {}, name)),
    kv([["owner", w.owner], ["active", w.active ? "yes" : "no"], ["description", w.description], ["updated", when(w.updated_at)]]),
    el("h2", {}, "Definition"), el("pre", { id: "definition" }, JSON.stringify(w.definition, null, 2)));
  if (can("submit")) {
    main.append(el("h2", {}, "Run"), el("p", {}, "Input (JSON object):"), input, el("p", {},
      el("button", { id: "run", on: { click: async () => {
        let inp;
        try { inp = JSON.parse(input.value || "{}"); } catch (e) { flash("the input is not JSON: " + e.message, true); return; }
        try { const r = await api("POST", "/v1/workflows/" + encodeURIComponent(name) + "/run", { input: inp }); go("/jobs/" + r.id); }
        catch (e) { flash(e.message, true); } } } }, "run")));
  }
  main.append(el("h2", {}, "Webhook"), hook);
  async function drawHook() {
    hook.textContent = "";
    let h = null;
    try { h = await api("GET", "/v1/workflows/" + encodeURIComponent(name) + "/webhook"); } catch (e) { /* none */ }
    if (h) hook.append(el("p", {}, "POST ", el("code", { id: "webhook-url" }, location.origin + h.path), " · signature: ", h.signature));
    else hook.append(el("p", {}, "No webhook."));
    if (!can("submit")) return;
    const act = (a) => async () => {
      try { await api("POST", "/v1/workflows/" + encodeURIComponent(name) + "/webhook", { action: a }); drawHook(); }
      catch (e) { flash(e.message, true); } };
    hook.append(h ? el("p", {}, el("button", { id: "hook-rotate", on: { click: act("rotate") } }, "rotate"), " ",
                              el("button", { id: "hook-revoke", on: { click: act("revoke") } }, "revoke"))
                  : el("p", {}, el("button", { id: "hook-create", on: { click: act("create") } }, "create a webhook")));
  }
  await drawHook();
}

async function pageSchedules(main) {
  const r = await api("GET", "/v1/schedules");
  const q = (x) => "/v1/schedules/" + encodeURIComponent(x.queue) + "/" + encodeURIComponent(x.name);
  const act = (x, a) => async () => {
    try { if (a === "rm") await api("DELETE", q(x)); else await api("POST", q(x) + "/" + a); route(); }
    catch (e) { flash(e.message, true); } };
  main.append(el("h1", {}, "Schedules"),
    el("p", {}, "Stored in Redis, fired once per fire time by the daemons serving each queue (",
       el("code", {}, "hopperctl schedule put NAME --cron SPEC --job JSON"), ")."),
    table([["name", x => x.name], ["queue", x => x.queue], ["cron", x => x.cron], ["tz", x => x.tz],
           ["next fire", x => x.paused ? "paused" : when(x.next_fire)], ["fires", x => String(x.fires)],
           ["missed", x => String(x.missed)], ["last job", x => x.last_job ? jobLink(x.last_job) : ""],
           ["error", x => x.error || ""],
           ["", x => can("submit") ? el("span", {},
              el("button", { class: x.paused ? "sched-resume" : "sched-pause", "data-name": x.name,
                             on: { click: act(x, x.paused ? "resume" : "pause") } }, x.paused ? "resume" : "pause"), " ",
              el("button", { class: "sched-rm", "data-name": x.name, on: { click: act(x, "rm") } }, "delete")) : ""]],
          r.schedules, "schedules"));
}

async function pageTokens(main) {
  const r = await api("GET", "/v1/tokens");
  const name = el("input", { id: "new-name", size: 16 }), scopes = el("input", { id: "new-scopes", value: "submit,read", size: 24 });
  const form = el("form", { id: "token-form" }, "name ", name, " scopes ", scopes, " ", el("button", { type: "submit" }, "create"));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    try {
      const t = await api("POST", "/v1/tokens", { name: name.value, scopes: scopes.value.split(",").map(s => s.trim()).filter(Boolean) });
      await route();
      flash("token " + t.name + " (shown once): ");
      document.getElementById("flash").append(el("code", { id: "new-token" }, t.token));
    } catch (e) { flash(e.message, true); }
  });
  main.append(el("h1", {}, "Tokens"), form,
    table([["name", t => t.name], ["id", t => t.token_id], ["owner", t => t.owner], ["scopes", t => (t.scopes || []).join(",")],
           ["created", t => when(t.created_at)], ["last used", t => when(t.last_used_at)], ["revoked", t => when(t.revoked_at)],
           ["", t => t.revoked_at ? "" : el("button", { class: "revoke", "data-name": t.name, on: { click: async () => {
             try { await api("DELETE", "/v1/tokens/" + encodeURIComponent(t.name)); route(); } catch (e) { flash(e.message, true); } } } }, "revoke")]],
          r.tokens, "tokens"));
}

/* --- frame --- */

function header() {
  const who = document.getElementById("who"), out = document.getElementById("logout");
  who.textContent = S.who ? (S.who.name || S.who.owner) + " (" + (S.who.scopes || []).join(",") + ")" : "";
  out.hidden = !S.who;
  document.getElementById("nav-tokens").hidden = !(S.who && (S.who.scopes || []).includes("admin"));
}

async function route() {
  const main = document.getElementById("main");
  main.textContent = "";
  if (S.es) { S.es.close(); S.es = null; }
  const p = location.pathname;
  try {
    if (!S.who && p !== "/login") {
      try { const s = await api("GET", "/session"); S.csrf = s.csrf; S.who = s.identity; header(); }
      catch (e) { return; }
    }
    let m;
    if (p === "/login") await pageLogin(main);
    else if (p === "/") await pageOverview(main);
    else if (p === "/jobs") await pageJobs(main, false);
    else if (p === "/dead") await pageJobs(main, true);
    else if ((m = p.match(/^\/jobs\/(.+)$/))) await pageJob(main, decodeURIComponent(m[1]));
    else if (p === "/workflows") await pageWorkflows(main);
    else if ((m = p.match(/^\/workflows\/(.+)$/))) await pageWorkflow(main, decodeURIComponent(m[1]));
    else if (p === "/schedules") await pageSchedules(main);
    else if (p === "/tokens") await pageTokens(main);
    else main.append(el("h1", {}, "Not found"));
  } catch (e) { flash(e.message, true); }
}

document.addEventListener("click", ev => {
  const a = ev.target.closest("a");
  if (a && a.origin === location.origin && !ev.ctrlKey && !ev.metaKey) { ev.preventDefault(); go(a.pathname + a.search); }
});
window.addEventListener("popstate", route);
document.getElementById("logout").addEventListener("click", async () => {
  try { await api("POST", "/logout"); } catch (e) { /* gone anyway */ }
  S.who = null; S.csrf = null; header(); go("/login");
});
route();
