// The cronflow-actors web console: a page per hash route, every datum from the HTTP API.
//
// Authentication: the API's bearer token, kept in this tab's sessionStorage and sent in the
// Authorization header of each call (never a cookie: see cronflow_actors/http/console/__init__.py
// for why). Data is written into the page with textContent, never as HTML.
"use strict";

(function () {
  const TOKEN = "cronflow.token";
  const FINAL = new Set(["completed", "failed", "canceled"]);
  const STATUSES = ["running", "waiting", "completed", "failed", "canceled", "blocked"];
  const REFRESH_MS = 2500;
  const main = document.getElementById("main");
  let refreshTimer = null;
  let generation = 0; // bumped on every navigation: late answers of a left page are dropped
  let flowsCache = null;
  // The page before each page of runs, by its filters and cursor, kept in the tab: "Newer" went
  // by a trail only the buttons kept, and skipped pages after the browser's Back or a reload
  // (console h43 F1). A page reached by a link of its own goes back to the first.
  const NEWER = "cronflow.newer";
  function newerPages() {
    try { return JSON.parse(sessionStorage.getItem(NEWER) || "{}"); } catch (error) { return {}; }
  }

  // -- DOM -------------------------------------------------------------------------------------

  // A button's click or a form's submit whose call is out takes no second one: a double click
  // started two runs and published twice, and the second answer replaced the first (console
  // h43 F8). What the handler disabled itself (a question's Yes) stays as it left it.
  function once(node, handler) {
    let pending = false;
    return (event) => {
      if (pending) { event.preventDefault(); return; }
      const result = handler(event);
      if (!result || typeof result.then !== "function") return;
      pending = true;
      const buttons = (node.tagName === "FORM" ? [...node.querySelectorAll("button[type=submit]")] : [node])
        .filter((button) => !button.disabled);
      for (const button of buttons) button.disabled = true;
      const done = () => { pending = false; for (const button of buttons) button.disabled = false; };
      result.then(done, done);
    };
  }

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "onclick" && tag === "button" || key === "onsubmit") node.addEventListener(key.slice(2), once(node, value));
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else if (key === "value") node.value = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function runLink(id) {
    // a run's id, whole when short (an instance id of the caller's: "order-7"); a long one by
    // its head and tail, since ids made here begin with the time and differ at their end
    const shown = id.length <= 24 ? id : `${id.slice(0, 8)}…${id.slice(-8)}`;
    return h("a", { href: `#/runs/${encodeURIComponent(id)}`, class: "mono", title: id, text: shown });
  }

  function badge(status) {
    return h("span", { class: `badge s-${status}`, "data-status": status, text: status });
  }

  // What a reader cannot see, in text (a pause's description: retest h35 L4) and what
  // JSON.stringify leaves raw: the C0 controls but tab and newline, DEL, the C1, the bidi
  // controls (a sender's U+202E turned the rest of a webhook's query around: retest h33 F7) and
  // the line and paragraph separators. Shown as \uXXXX, as the CLI shows them; in JSON text
  // that is the same string still (a payload edited for a replay parses to what was sent).
  const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

  function visible(text) {
    return text.replace(HIDDEN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }

  function json(value) {
    const text = JSON.stringify(value, null, 2);
    return text === undefined ? text : visible(text);
  }

  function notice(message, ok) {
    const box = document.getElementById("notice");
    if (!message) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = visible(message);  // a refusal may quote what a sender sent
    box.className = ok ? "notice ok" : "notice";
    box.hidden = false;
  }

  // -- time ------------------------------------------------------------------------------------

  function when(epoch) {
    if (epoch === null || epoch === undefined) return "—";
    const date = new Date(epoch * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  // ``epoch`` in the IANA zone ``zone`` (a schedule's), named: the browser's own zone read 01:30
  // for a 02:30 Europe/Paris schedule, said nowhere (newcomer h30 F3).
  function whenIn(epoch, zone) {
    try {
      const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
        timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      }).formatToParts(new Date(epoch * 1000)).map((part) => [part.type, part.value]));
      return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${zone}`;
    } catch (error) {  // a zone this browser does not know
      return `${when(epoch)} (your time)`;
    }
  }

  function ago(epoch) {
    if (epoch === null || epoch === undefined) return "";
    const seconds = Date.now() / 1000 - epoch;
    const future = seconds < 0;
    const s = Math.abs(seconds);
    const text = s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min`
      : s < 86400 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
    return future ? `in ${text}` : `${text} ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return "—";
    if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  }

  function timeCell(epoch) {
    return h("span", { title: ago(epoch) }, when(epoch));
  }

  // -- the API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || `the server answered ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN);
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, { detail: "cannot reach the server; is it running?" });
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (error) {
      // an answer that is not the API's (a path the browser resolved elsewhere: "/runs/.."
      // is "/"; console h43 F5): said, not read as data
      if (response.ok) throw new ApiError(response.status, { detail: `the server did not answer ${path} with data (no such run?)` });
      data = { detail: text };
    }
    if (!response.ok) {
      const failure = new ApiError(response.status, data);
      if (response.status === 401) signIn(failure, Boolean(token));
      throw failure;
    }
    return data;
  }

  async function flows(fresh) {
    if (!flowsCache || fresh) flowsCache = (await api("GET", "/flows")).flows;
    return flowsCache;
  }

  // A browser reads every JSON number as a double: a whole number past 2^53 lost its last
  // digits and 1e400 became null, sent without a word where the API refuses both (hostile h35
  // F3). Refused here as the API would, saying what to write instead. A whole number past
  // 2^53 written otherwise (1e20) loses no digit, but goes out as 100000000000000000000, an
  // integer, not the float written: said so, not that digits were lost (hostile h36 F3).
  function exactNumber(key, value, context) {
    if (typeof value !== "number") return value;
    const where = key ? `"${key}"` : "the top";
    if (!Number.isFinite(value)) throw new Error(`the number at ${where} is too large for JSON (it would be sent as null)`);
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      const source = context && typeof context.source === "string" ? context.source : null;
      if (source !== null && !/^-?\d+$/.test(source)) {
        throw new Error(`the number at ${where} (${source}) would go out as the whole number ${BigInt(value)}, not as written; write it as a string`);
      }
      throw new Error(`the number at ${where} is past 2^53: a browser keeps only its first digits (${value}); write it as a string`);
    }
    return value;
  }

  // The first key an object of ``text`` (valid JSON) gives twice, or null: JSON.parse keeps
  // the last silently, where the API refuses the body (hostile h36 F3).
  function repeatedKey(text) {
    const open = [];
    for (let at = 0; at < text.length; at += 1) {
      const c = text[at];
      if (c === "{") open.push(new Set());
      else if (c === "[") open.push(null);
      else if (c === "}" || c === "]") open.pop();
      else if (c === '"') {
        let end = at + 1;
        while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
        let next = end + 1;
        while (/\s/.test(text[next] || "")) next += 1;
        const keys = open[open.length - 1];
        if (text[next] === ":" && keys) {
          const key = JSON.parse(text.slice(at, end + 1));
          if (keys.has(key)) return key;
          keys.add(key);
        }
        at = end;
      }
    }
    return null;
  }

  function parseJson(text, what) {
    if (!text.trim()) return null;
    try {
      JSON.parse(text);
    } catch (error) {
      throw new Error(`${what} is not valid JSON: ${error.message}`);
    }
    const repeated = repeatedKey(text);
    if (repeated !== null) throw new Error(`${what} gives the key ${JSON.stringify(repeated)} twice in one object: give it once`);
    try {
      return JSON.parse(text, exactNumber);
    } catch (error) {
      throw new Error(`${what}: ${error.message}`);
    }
  }

  // -- sign-in ---------------------------------------------------------------------------------

  // A page's lookups that may fail without spoiling it (the flows for a filter, say); a 401
  // still stops the page, which the sign-in form has replaced.
  function orNone(fallback) {
    return (error) => {
      if (error instanceof ApiError && error.status === 401) throw error;
      return fallback;
    };
  }

  let signInShown = -1;

  function signIn(failure, had) {
    if (signInShown === generation) return; // this page's other calls were refused too
    stopRefresh();
    generation += 1;
    signInShown = generation;
    sessionStorage.removeItem(TOKEN);
    showWho();
    const input = h("input", { type: "password", id: "token", autocomplete: "off", placeholder: "bearer token" });
    const form = h("form", {
      class: "card signin",
      onsubmit: (event) => {
        event.preventDefault();
        if (!input.value.trim()) return;
        // fetch refuses a header with such a character before it sends anything: every page
        // then read "cannot reach the server" (console h43 F10)
        const odd = [...input.value.trim()].find((c) => c.charCodeAt(0) > 0xff || c.charCodeAt(0) < 0x20);
        if (odd !== undefined) {
          notice(`The token has a character no HTTP header can carry (U+${odd.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}), picked up with it when it was copied, most likely: paste the token alone.`);
          return;
        }
        sessionStorage.setItem(TOKEN, input.value.trim());
        notice("");
        showWho();
        route();
      },
    },
    h("h1", { text: "Sign in" }),
    h("p", { text: had ? "The server refused the token: " + failure.message
      : "This server needs a bearer token: one of its API tokens." }),
    h("label", {}, "Token", input),
    h("p", { class: "muted", text: "Kept in this tab only, sent as an Authorization header; closing the tab forgets it." }),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", text: "Sign in" })));
    main.replaceChildren(form);
    input.focus();
  }

  function showWho() {
    const who = document.getElementById("who");
    if (sessionStorage.getItem(TOKEN)) {
      who.replaceChildren("signed in with a token", h("button", {
        type: "button",
        id: "signout",
        onclick: () => { sessionStorage.removeItem(TOKEN); showWho(); route(); },
        text: "Sign out",
      }));
    } else {
      who.replaceChildren();
    }
  }

  // -- routing ---------------------------------------------------------------------------------

  function stopRefresh() {
    if (refreshTimer !== null) clearInterval(refreshTimer);
    refreshTimer = null;
  }

  function every(fn) {
    stopRefresh();
    const mine = generation;
    let failed = null;
    refreshTimer = setInterval(() => {
      if (mine !== generation) return stopRefresh();
      if (document.hidden) return;
      const active = document.activeElement;
      if (active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return;
      // a refresh's own failure goes once a refresh works again: "cannot reach the server"
      // stayed over fresh data (console h43 F9)
      fn().then(() => {
        if (failed !== null && document.getElementById("notice").textContent === visible(failed)) notice("");
        failed = null;
      }, (error) => { failed = error.message; notice(error.message); });
    }, REFRESH_MS);
  }

  function query(hash) {
    const at = hash.indexOf("?");
    return new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
  }

  const ROUTES = [
    [/^#\/runs\/([^/?]+)$/, (m) => runPage(decodeURIComponent(m[1]))],
    [/^#\/runs(\?.*)?$/, () => runsPage(query(location.hash))],
    [/^#\/paused$/, () => pausedPage()],
    [/^#\/workflows$/, () => workflowsPage()],
    [/^#\/events(\?.*)?$/, () => eventsPage(query(location.hash))],
  ];

  async function route() {
    stopRefresh();
    generation += 1;
    notice(arriving, true);
    arriving = "";
    const hash = location.hash || "#/runs";
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", hash.startsWith(`#/${link.dataset.nav}`));
    }
    for (const [pattern, page] of ROUTES) {
      const match = hash.match(pattern);
      if (!match) continue;
      try {
        await page(match);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) {
          main.replaceChildren(h("div", { class: "card" }, h("h1", { text: "Cannot show this page" }),
            h("p", { class: "error", text: visible(error.message) })));
        }
      }
      return;
    }
    location.hash = "#/runs";
  }

  let arriving = "";  // what the page go() leads to says first (a route clears the notice)

  function go(hash, message) {
    arriving = message || "";
    if (location.hash === hash) route(); else location.hash = hash;
  }

  // -- runs ------------------------------------------------------------------------------------

  async function runsPage(params) {
    const mine = generation;
    const workflow = params.get("workflow") || "";
    const status = params.get("status") || "";
    const limit = params.get("limit") || "20";
    const cursor = params.get("cursor") || "";
    const here = [workflow, status, limit].join("\u0000");
    const known = await flows().catch(orNone([]));
    const workflowInput = h("input", { id: "filter-workflow", list: "flow-ids", value: workflow, placeholder: "any workflow" });
    const statusSelect = h("select", { id: "filter-status" },
      h("option", { value: "", text: "any status" }),
      STATUSES.map((s) => h("option", { value: s, text: s, selected: s === status })));
    // a limit given in the address is shown as it is taken (it read "20" over 1,000 rows:
    // console h43 F5)
    const limitSelect = h("select", { id: "filter-limit" },
      [...new Set(["20", "50", "100", limit])].map((n) => h("option", { value: n, text: n, selected: n === limit })));
    const auto = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
    const refreshed = h("span", { class: "refreshed", id: "refreshed" });
    const table = h("div", { id: "runs-table" });
    const pager = h("div", { class: "pager" });
    const link = (changes) => {
      const next = new URLSearchParams({ workflow, status, limit, cursor, ...changes });
      for (const [key, value] of [...next]) if (!value) next.delete(key);
      return `#/runs${[...next].length ? "?" + next : ""}`;
    };
    const filters = h("form", {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        go(link({ workflow: workflowInput.value.trim(), status: statusSelect.value, limit: limitSelect.value, cursor: "" }));
      },
    },
    h("label", {}, "Workflow", workflowInput, h("datalist", { id: "flow-ids" }, known.map((f) => h("option", { value: f.id })))),
    h("label", {}, "Status", statusSelect),
    h("label", {}, "Per page", limitSelect),
    h("button", { type: "submit", class: "primary", text: "Filter" }),
    h("label", { class: "inline" }, auto, "refresh by itself"),
    refreshed);
    statusSelect.addEventListener("change", () => filters.requestSubmit());
    limitSelect.addEventListener("change", () => filters.requestSubmit());
    main.replaceChildren(h("h1", { text: "Runs" }), filters, table, pager);

    async function load() {
      const path = `/runs?${new URLSearchParams(Object.entries({ workflow, status, limit, cursor }).filter(([, v]) => v))}`;
      const page = await api("GET", path);
      if (mine !== generation) return;
      const now = Date.now() / 1000;
      const rows = page.runs.map((run) => h("tr", { "data-run": run.id },
        h("td", {}, runLink(run.id)),
        h("td", {}, run.workflow_name && run.workflow_name !== run.workflow ? `${run.workflow_name} (${run.workflow})` : run.workflow),
        h("td", {}, badge(run.status), run.migrated_to ? h("span", { class: "muted", text: " migrated" }) : null,  // (newcomer h34 F10)
          run.resumed_as ? h("span", { class: "muted", text: " resumed" }) : null),  // (newcomer h35 F5)
        h("td", {}, timeCell(run.created_at)),
        h("td", {}, duration((run.finished_at || (FINAL.has(run.status) ? run.created_at : now)) - run.created_at)),
        h("td", {}, timeCell(run.finished_at))));
      table.replaceChildren(rows.length ? h("table", { id: "runs" },
        h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Started", "Duration", "Finished"].map((t) => h("th", { text: t })))),
        h("tbody", {}, rows)) : h("p", { class: "muted card", text: "No runs match." }));
      pager.replaceChildren(
        h("button", { type: "button", text: "« First page", disabled: !cursor, onclick: () => go(link({ cursor: "" })) }),
        h("button", { type: "button", text: "‹ Newer", disabled: !cursor, onclick: () => go(link({ cursor: newerPages()[`${here}\u0000${cursor}`] || "" })) }),
        h("button", { type: "button", id: "older", text: "Older ›", disabled: !page.next_cursor, onclick: () => {
          const pages = newerPages();
          pages[`${here}\u0000${page.next_cursor}`] = cursor;
          sessionStorage.setItem(NEWER, JSON.stringify(pages));
          go(link({ cursor: page.next_cursor }));
        } }),
        h("span", { class: "muted", text: `${page.runs.length} run${page.runs.length === 1 ? "" : "s"} on this page` }));
      refreshed.textContent = `refreshed ${when(Date.now() / 1000).slice(11)}`;
    }
    await load();
    every(async () => { if (auto.checked) await load(); });
  }

  // -- one run ---------------------------------------------------------------------------------

  // The pauses a run waits in (a net's several work items, a flow's item flows each at one):
  // one indexed read of the run's own, never a listing of every pause to find them. The
  // page showed the oldest only (retest h34 F4).
  const PAUSES_SHOWN = 50;
  async function findPauses(runId) {
    return api("GET", `/paused?run_id=${encodeURIComponent(runId)}&limit=${PAUSES_SHOWN}`)
      .catch(orNone({ paused: [], next_cursor: null }));
  }

  // Whether a run may wait for a person: an open step that is a pause, or may hold one (a
  // subflow, item flows). A run waiting for an event or a timer is not asked, as each 404
  // counted as an HTTP error on the dashboards while its page was open (newcomer h32 F3).
  const PERSONLESS = new Set(["step", "action", "sleep", "delay", "event", "task", "parallel", "race"]);
  function mayPause(run) {
    return run.steps.some((step) => !FINAL.has(step.status) && !PERSONLESS.has(step.kind));
  }

  function confirmButton(label, className, confirmText, action) {
    const holder = h("span", { class: "actions" });
    const first = h("button", { type: "button", class: className, text: label, onclick: () => {
      holder.replaceChildren(h("span", { text: confirmText }),
        h("button", { type: "button", class: "danger", "data-confirm": label, text: "Yes", onclick: async (event) => {
          event.target.disabled = true;
          try { await action(); } catch (error) { notice(error.message); holder.replaceChildren(first); }
        } }),
        h("button", { type: "button", text: "No", onclick: () => holder.replaceChildren(first) }));
    } });
    holder.appendChild(first);
    return holder;
  }

  // An error with its class in front, unless its text names the class already ("builtins.
  // RuntimeError: RuntimeError: down" said it twice: newcomer h32 F10).
  function failure(failed) {
    const type = failed.error_type;
    const short = type ? type.split(".").pop() : null;
    const said = type && !failed.error.includes(`${short}:`) ? `${type}: ${failed.error}` : failed.error;
    return visible(said);  // an error may quote what a sender sent
  }

  function stepTree(run) {
    const begin = run.created_at;
    const end = Math.max(run.finished_at || Date.now() / 1000, ...run.steps.map((s) => s.finished_at || 0));
    const span = Math.max(end - begin, 0.001);
    return h("ol", { class: "steps", id: "steps" }, run.steps.map((step) => {
      const took = step.started_at && step.finished_at ? step.finished_at - step.started_at : null;
      const bar = h("div", { class: "timing", title: `${when(step.started_at)} → ${when(step.finished_at)}` });
      if (step.started_at) {
        const fill = h("span");
        fill.style.left = `${(100 * (step.started_at - begin)) / span}%`;
        fill.style.width = `${(100 * ((step.finished_at || end) - step.started_at)) / span}%`;
        bar.appendChild(fill);
      }
      return h("li", { class: "step", "data-step": step.id },
        h("div", { class: "rail" }, h("span", { class: `dot s-${step.status}` })),
        h("div", { class: "body" },
          h("div", { class: "step-head" },
            h("span", { class: "name", text: step.id }),
            h("span", { class: "kind", text: step.kind }),
            badge(step.status),
            h("span", { class: "muted", text: `attempts ${step.attempts}` }),
            step.redispatches ? h("span", { class: "muted", text: `${step.kind === "action" ? "dispatched" : "run"} again after ${step.redispatches} restart(s)` }) : null,
            h("span", { class: "muted", text: step.started_at ? `started ${when(step.started_at)}`
              : step.carried ? "carried over, not run here" : "not started" }),
            took !== null ? h("span", { class: "muted", text: `took ${duration(took)}` }) : null),
          bar,
          // what a waiting step waits for, and where to send it (newcomer h32 F8)
          step.event && !FINAL.has(step.status) ? h("div", { class: "muted", "data-event": step.event }, "waits for the event ",
            h("a", { href: `#/events?name=${encodeURIComponent(step.event)}`, text: step.event })) : null,
          step.error ? h("div", { class: "error", text: failure(step) }) : null,
          step.output !== null && step.output !== undefined
            ? h("details", {}, h("summary", { text: "output" }), h("pre", { text: json(step.output) })) : null));
    }));
  }

  // A net's pause item: Approve and Reject both complete it (approved true or false), and the
  // net decides what follows; a flow's run goes on by its own steps (newcomer h33 F3: a net's
  // "Reject" read as stopping it)
  const NET_PAUSE = "A net's work item: Approve and Reject both complete it (approved: true or false); the net routes on that.";

  function pauseForm(pause, onDone, net) {
    const name = h("input", { name: "approved_by", placeholder: "your name (approved_by)" });
    const reason = h("input", { name: "reason", placeholder: "reason (optional)" });
    const extra = h("textarea", { name: "payload", placeholder: '{"any": "more fields"}' });
    const send = async (approved) => {
      let payload;
      try {
        payload = parseJson(extra.value, "the payload") || {};
        if (typeof payload !== "object" || Array.isArray(payload)) throw new Error("the payload is a JSON object");
      } catch (error) { notice(error.message); return; }
      if ("approved" in payload && payload.approved !== approved) {  // (as the CLI: console h40 F5)
        notice(`The payload says "approved": ${JSON.stringify(payload.approved)}, and you pressed ${approved ? "Approve" : "Reject"}: leave "approved" out of the payload, or press the other button.`);
        return;
      }
      payload.approved = approved;
      if (name.value.trim()) payload.approved_by = name.value.trim();
      if (reason.value.trim()) payload.reason = reason.value.trim();
      // one answer at a time: Approve, then Reject while the first was out, sent both (the
      // review of console h43 F8's fix)
      for (const button of buttons) button.disabled = true;
      try {
        await api("POST", `/resume/${encodeURIComponent(pause.token)}`, payload);
        notice(net ? `Completed step ${pause.step} with approved: ${approved}; its net decides what follows.`
          : `${approved ? "Approved" : "Rejected"}: run ${pause.run_id} goes on.`, true);
        document.activeElement?.blur();  // done with: the page may redraw (a net waits on)
        onDone();
      } catch (error) { notice(error.message); } finally {
        for (const button of buttons) button.disabled = false;
      }
    };
    const buttons = [
      h("button", { type: "button", class: "approve", text: "Approve", onclick: () => send(true) }),
      h("button", { type: "button", class: "reject", text: "Reject", onclick: () => send(false) })];
    return h("div", { class: "form" },
      net ? h("p", { class: "muted net-pause", text: NET_PAUSE }) : null,
      h("label", {}, "Approved by", name), h("label", {}, "Reason", reason),
      h("label", {}, "More payload (JSON object)", extra),
      h("div", { class: "actions" }, ...buttons));
  }

  // A net's work items that callers act on now, its composite tasks' child nets' included
  // (GET /workflows/{id}/work-items, one read), each with the actions its state allows: the
  // work list a Tasquencer user looks for (newcomer h34 F8: a person's task could be taken and
  // done with curl or the command line only). A pause waiting for its answer is answered by
  // its own form, above; cancel and reset are left to the API and the command line.
  const ITEM_VERBS = ["start", "complete", "fail"];

  async function workList(runId, net, onDone) {
    const listed = await api("GET", `/workflows/${encodeURIComponent(runId)}/work-items`)
      .catch(orNone({ work_items: [] }));
    const rows = [];
    for (const item of listed.work_items) {
      const can = ITEM_VERBS.filter((verb) => item.actions.includes(verb));
      if (can.length && !item.token) rows.push(workRow(item, can, onDone, item.net !== net.name ? item.net : null));
    }
    if (!rows.length) return null;
    return h("div", { id: "work-list" }, h("h2", { text: "Work items to act on" }),
      h("table", {}, h("thead", {}, h("tr", {}, ["Task", "Work item", "State", "Payload (JSON)", ""].map((t) => h("th", { text: t })))),
        h("tbody", {}, rows)));
  }

  // (``child``: the child net it belongs to, below a composite task of the drawn one)
  function workRow(item, verbs, onDone, child) {
    const payload = h("textarea", { name: "payload", placeholder: "{}" });
    const act = async (verb) => {
      let body;
      try { body = parseJson(payload.value, "the payload"); } catch (error) { notice(error.message); return; }
      try {
        await api("POST", `/work-items/${encodeURIComponent(item.id)}/${verb}`, body);
        notice(`${verb}: work item ${item.id} of task ${item.task}`, true);
        document.activeElement?.blur();  // done with: the page may redraw (it keeps a focused form)
        onDone();
      } catch (error) { notice(error.message); }
    };
    return h("tr", { "data-item": item.id },
      h("td", { text: child ? `${item.task} (in ${child})` : item.task }), h("td", { class: "mono", text: item.id }), h("td", {}, badge(item.state)),
      h("td", {}, payload),
      h("td", {}, h("div", { class: "actions" }, verbs.map((verb) => h("button", { type: "button", "data-verb": verb, text: verb[0].toUpperCase() + verb.slice(1), onclick: () => act(verb) })))));
  }

  async function runPage(runId) {
    const mine = generation;
    const known = await flows().catch(orNone([]));
    const isFlow = (run) => known.some((f) => f.id === run.workflow);
    const holder = h("div", { id: "run" });
    main.replaceChildren(h("p", {}, h("a", { href: "#/runs", text: "← Runs" })), holder);
    let shownStatus = null;
    let shownAnswer = null;  // what the page shows, as the API said it

    async function load() {
      const run = await api("GET", `/runs/${encodeURIComponent(runId)}`);
      if (mine !== generation) return;
      const flow = isFlow(run);
      const net = flow ? null : await api("GET", `/workflows/${encodeURIComponent(runId)}/net`).catch(orNone(null));
      const pauses = (run.status === "waiting" || run.status === "blocked") && mayPause(run) ? await findPauses(runId) : null;
      if (mine !== generation) return;
      const final = FINAL.has(run.status);
      const started = () => `${when(run.created_at)} (${ago(run.created_at)})`;
      const lasted = () => duration((run.finished_at || Date.now() / 1000) - run.created_at);
      const answer = JSON.stringify([run, net, pauses]);
      // a flow's run whose answer is the same: only the clock moved (an opened output closed
      // and a selection was lost at each refresh: console h43 F6); a net's work items are
      // read below, so its page is drawn again
      if (answer === shownAnswer && !net) {
        holder.querySelector("#started").textContent = started();
        holder.querySelector("#duration").textContent = lasted();
        return;
      }
      const actions = h("div", { class: "actions" });
      if (run.migration_pending) {  // canceled for a run that never started: cancel gives it up
        actions.appendChild(confirmButton("Give the migration up", "danger", `Give up the migration to ${run.migrated_to}? This run's end hooks are called, and it can be resumed or replayed.`, async () => {
          await api("POST", `/runs/${encodeURIComponent(runId)}/cancel`);
          notice(`The migration of ${runId} was given up.`, true);
          await load();
        }));
      }
      if (!final) {
        actions.appendChild(confirmButton("Cancel run", "danger", "Cancel this run?", async () => {
          await api("POST", flow ? `/runs/${encodeURIComponent(runId)}/cancel` : `/workflows/${encodeURIComponent(runId)}/cancel`);
          notice(`Run ${runId} canceled.`, true);
          await load();
        }));
        // a cancel runs the run's teardown code, and code that raises refuses it (console h43 F4)
        actions.appendChild(confirmButton("Terminate…", "danger", "Terminate this run? It ends at once, canceled, without running any of its code: no teardown, cancel callback or end hook (a step already running runs to its end, its result not taken).", async () => {
          const body = { terminate: true, reason: "terminated from the console" };
          await api("POST", flow ? `/runs/${encodeURIComponent(runId)}/cancel` : `/workflows/${encodeURIComponent(runId)}/cancel`, body);
          notice(`Run ${runId} terminated.`, true);
          await load();
        }));
      }
      if (flow && !run.migrated_to) {  // a run a migration replaced goes on in its successor
        const replayBox = h("div", { class: "card", hidden: true },
          h("label", {}, "Payload for the replay (JSON; empty: the recorded one)",
            h("textarea", { id: "replay-payload", value: run.payload === null ? "" : json(run.payload) })),
          h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "replay-start", text: "Start the replay", onclick: async () => {
            try {
              const text = replayBox.querySelector("textarea").value;
              const body = text.trim() ? { payload: parseJson(text, "the payload") } : {};
              const started = await api("POST", `/runs/${encodeURIComponent(runId)}/replay`, body);
              go(`#/runs/${encodeURIComponent(started.run_id)}`, `Replay of ${runId} started.`);
            } catch (error) { notice(error.message); }
          } })));
        actions.appendChild(h("button", { type: "button", id: "replay", text: "Replay…", onclick: () => { replayBox.hidden = !replayBox.hidden; } }));
        if ((run.status === "failed" || run.status === "canceled") && !run.resumed_as) {  // go on from where it stopped
          const resume = confirmButton("Resume", "primary", "Resume from where it stopped? Its completed steps keep their outputs and are not run again.", async () => {
            const started = await api("POST", `/runs/${encodeURIComponent(runId)}/replay`, { resume: true });
            go(`#/runs/${encodeURIComponent(started.run_id)}`, started.duplicate ? `${runId} was resumed before: this is its resume.` : `Resume of ${runId} started.`);
          });
          resume.querySelector("button").id = "resume";
          actions.appendChild(resume);
        }
        actions.appendChild(replayBox);
      }
      const meta = h("dl", { class: "meta" },
        h("dt", { text: "Workflow" }), h("dd", {}, flow ? h("a", { href: `#/runs?workflow=${encodeURIComponent(run.workflow)}`, text: run.workflow_name || run.workflow }) : `${run.workflow} (net workflow)`),
        h("dt", { text: "Status" }), h("dd", {}, badge(run.status)),
        h("dt", { text: "Started" }), h("dd", { id: "started", text: started() }),
        h("dt", { text: "Finished" }), h("dd", { text: run.finished_at ? `${when(run.finished_at)} (${ago(run.finished_at)})` : "—" }),
        h("dt", { text: "Duration" }), h("dd", { id: "duration", text: lasted() }),
        run.version ? h("dt", { text: "Version" }) : null,
        run.version ? h("dd", { id: "version", text: run.version }) : null,
        run.replay_of ? h("dt", { text: run.id.startsWith("resume:") ? "Resume of" : "Replay of" }) : null,
        run.replay_of ? h("dd", {}, h("a", { href: `#/runs/${encodeURIComponent(run.replay_of)}`, class: "mono", text: run.replay_of })) : null,
        run.migrated_from ? h("dt", { text: "Migrated from" }) : null,
        run.migrated_from ? h("dd", {}, h("a", { href: `#/runs/${encodeURIComponent(run.migrated_from)}`, class: "mono", id: "migrated-from", text: run.migrated_from })) : null,
        run.migrated_to ? h("dt", { text: "Migrated to" }) : null,
        run.migrated_to && run.migration_pending ? h("dd", { id: "migration-pending" }, h("span", { class: "mono", text: run.migrated_to }), " (pending: it has not started. If its start raised, fix the cause and migrate again, or give the migration up; if a crash cut it, the next start of a runtime carries it on)") : null,
        run.migrated_to && !run.migration_pending ? h("dd", {}, h("a", { href: `#/runs/${encodeURIComponent(run.migrated_to)}`, class: "mono", id: "migrated-to", text: run.migrated_to }), " (this run was canceled for it)") : null,
        run.resumed_as ? h("dt", { text: "Resumed as" }) : null,  // where its work goes on (newcomer h31 F2)
        run.resumed_as ? h("dd", {}, h("a", { href: `#/runs/${encodeURIComponent(run.resumed_as)}`, class: "mono", id: "resumed-as", text: run.resumed_as }),
          !run.current_run_id || run.current_run_id === run.resumed_as ? " (its work went on there)" : "") : null,
        run.started_by ? h("dt", { text: "Started by" }) : null,  // who asked (retest h33 F9)
        run.started_by ? h("dd", { id: "started-by", text: run.started_by }) : null,
        // further on, through more resumes or migrations (newcomer h33 F4)
        run.current_run_id && run.current_run_id !== (run.migrated_to || run.resumed_as) ? h("dt", { text: "Its work now in" }) : null,
        run.current_run_id && run.current_run_id !== (run.migrated_to || run.resumed_as) ? h("dd", {}, h("a", { href: `#/runs/${encodeURIComponent(run.current_run_id)}`, class: "mono", id: "current-run", text: run.current_run_id })) : null);
      const parts = [
        h("h1", {}, "Run ", h("span", { class: "mono", id: "run-id", text: run.id }), badge(run.status)),
        actions,
        h("div", { class: "grid2" },
          h("div", { class: "card" }, meta),
          h("div", { class: "card" },
            h("h2", { text: "Payload" }), h("pre", { id: "payload", text: json(run.payload) }),
            // what its webhook kept of the request (newcomer h33 F9: its steps alone saw it)
            run.trigger && (run.trigger.webhook || Object.keys(run.trigger.query || {}).length)
              ? h("details", { id: "trigger" }, h("summary", { text: `started by ${run.trigger.kind}${run.trigger.webhook ? " " + run.trigger.webhook : ""}` }),
                h("pre", { text: json({ params: run.trigger.params, query: run.trigger.query, headers: run.trigger.headers }) })) : null,
            h("h2", { text: "Output" }), h("pre", { id: "output", text: json(run.output) }),
            run.error ? h("h2", { text: "Error" }) : null,
            run.error ? h("pre", { class: "error", id: "error", text: failure(run) }) : null)),
      ];
      if (run.blocked) {  // it cannot run here: why, and what to do (no resume is taken)
        parts.push(h("div", { class: "card", id: "blocked" },
          h("h2", { text: "This run cannot run here" }), h("p", { class: "error", text: run.blocked })));
      }
      if (pauses && pauses.paused.length) {  // a form each (the oldest first)
        parts.push(h("div", { class: "card", id: "pause" }, pauses.paused.map((pause) => h("div", { class: "run-pause", "data-token": pause.token },
          // (a child net's or item flow's pause says whose it is: retest h35 L5)
          h("h2", { text: `Waiting for a person at step “${pause.step}”${pause.workflow !== run.workflow ? ` of the ${flow ? "flow" : "net"} ${pause.workflow}` : ""}` }),
          pause.description ? h("p", { class: "description", text: visible(pause.description) }) : null,
          run.blocked ? h("p", { class: "muted", text: "Its approval is refused while it cannot run here (above)." }) : pauseForm(pause, load, !flow))),
        pauses.next_cursor ? h("p", { class: "muted", text: `The first ${PAUSES_SHOWN} of its pauses: the Paused page lists the others.` }) : null));
      }
      if (net) {
        parts.push(h("h2", { text: "Net" }),
          h("div", { class: "legend" }, ["enabled", "started", "completed", "failed", "canceled", "disabled"].map((s) => badge(s)),
            h("span", { class: "muted", text: "● a token in a condition" })),
          h("div", { class: "net", id: "net" }, window.drawNet(net)),
          h("h2", { text: "Tasks" }),
          h("table", { id: "tasks" },
            h("thead", {}, h("tr", {}, ["Task", "Kind", "Join", "Split", "State", "Cancels"].map((t) => h("th", { text: t })))),
            h("tbody", {}, net.tasks.map((t) => h("tr", { "data-task": t.name },
              h("td", { text: t.name }), h("td", { text: t.kind }), h("td", { text: t.join }), h("td", { text: t.split }),
              h("td", {}, badge(t.state)), h("td", { text: t.cancels.join(", ") || "—" }))))));
        const work = final ? null : await workList(runId, net, load);
        if (mine !== generation) return;
        if (work) parts.push(work);
      }
      parts.push(h("h2", { text: flow ? "Steps" : "Work" }),
        run.steps.length ? stepTree(run) : h("p", { class: "muted", text: "No step has run yet." }));
      // keep open <details>, typed text and a question asked (a button's "Yes / No": the click
      // that asked it left the focus on the page) across refreshes: redraw when something changed
      const asked = holder.querySelector("[data-confirm]:not(:disabled)");  // (not once answered)
      const kept = holder.contains(document.activeElement) || asked;
      if (!kept || shownStatus !== run.status) {
        holder.replaceChildren(...parts);
        shownAnswer = answer;
      }
      shownStatus = run.status;
      if (final) stopRefresh();
    }
    await load();
    if (!FINAL.has(shownStatus)) every(load);  // (a final run's page is not refreshed at all)
  }

  // -- paused runs -----------------------------------------------------------------------------

  async function pausedPage() {
    const mine = generation;
    const list = h("div", { id: "paused" });
    main.replaceChildren(h("h1", { text: "Paused runs" }),
      h("p", { class: "muted", text: "Runs waiting for a person (human_in_the_loop), oldest first. Approve or reject with an optional payload." }),
      list);
    let cursor = "";
    async function load(append) {
      const page = await api("GET", `/paused?limit=50${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
      const known = await flows().catch(orNone(null));  // (unknown: no net's words)
      if (mine !== generation) return;
      const cards = page.paused.map((pause) => {
        const net = known !== null && !known.some((f) => f.id === pause.workflow);
        const card = h("div", { class: "card", "data-run": pause.run_id, "data-token": pause.token });
        card.append(h("div", { class: "pause" },
          h("div", {},
            h("h2", {}, runLink(pause.run_id),
              ` · ${pause.workflow} · step “${pause.step}”`),
            pause.description ? h("p", { class: "description", text: visible(pause.description) }) : null,
            h("dl", { class: "meta" },
              h("dt", { text: "Paused" }), h("dd", { text: `${when(pause.paused_at)} (${ago(pause.paused_at)})` }),
              h("dt", { text: "Expires" }), h("dd", { text: pause.blocked ? "not while it is blocked" : pause.expires_at ? `${when(pause.expires_at)} (${ago(pause.expires_at)})${net ? "; shown only: a net's pause does not expire by itself" : ""}` : "never" }),
              h("dt", { text: "Token" }), h("dd", { class: "mono", text: pause.token }),
              pause.approval_url ? h("dt", { text: "Approve at" }) : null,
              pause.approval_url ? h("dd", { text: visible(pause.approval_url) }) : null),
            Object.keys(pause.metadata || {}).length ? h("details", {}, h("summary", { text: "metadata" }), h("pre", { text: json(pause.metadata) })) : null,
            pause.last !== null && pause.last !== undefined ? h("details", {}, h("summary", { text: "last step's output" }), h("pre", { text: json(pause.last) })) : null,
            (pause.clipped || []).includes("last") ? h("p", { class: "muted", text: "The last step's output is too big to list here: the run's page shows it." }) : null),
          pause.blocked
            ? h("div", { class: "form blocked" }, h("p", { class: "error", text: `Blocked: ${pause.blocked}` }))
            : pauseForm(pause, () => card.remove(), net)));
        return card;
      });
      if (append) list.append(...cards); else list.replaceChildren(...cards);
      if (!list.children.length) list.replaceChildren(h("p", { class: "muted card", text: "No run is waiting for a person." }));
      cursor = page.next_cursor || "";
      if (cursor) list.append(h("button", { type: "button", text: "More", onclick: (event) => { event.target.remove(); load(true); } }));
    }
    await load(false);
  }

  // -- workflows -------------------------------------------------------------------------------

  // An interval as fire takes its name: one number and unit (600 -> "10m"; "10 min 0 s", as a
  // duration reads, was refused: newcomer h33 F6)
  function intervalName(seconds) {
    for (const [unit, size] of [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]]) {
      if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
    }
    return `${seconds} s`;
  }

  function triggerText(trigger) {
    switch (trigger.kind) {
      case "webhook": return `webhook ${trigger.method} ${trigger.path}`;
      case "schedule": return `cron “${trigger.cron}” (${trigger.timezone || "UTC"})`;
      case "interval": return `every ${intervalName(trigger.every)}`;
      case "event": return `event “${trigger.event}”`;
      case "poll": return `poll every ${duration(trigger.every)}`;
      default: return trigger.kind;
    }
  }

  // A flow's schedules paused (their ticks start no run) or running, and the button that
  // turns them the other way (newcomer h39 F3: only a code change and a restart could)
  function schedulesPause(id, paused) {
    const path = `/flows/${encodeURIComponent(id)}/schedules`;
    const note = h("input", { type: "text", name: "note", placeholder: "why (optional)" });
    const toggle = async () => {
      try {
        if (paused) await api("POST", `${path}/resume`);
        else await api("POST", `${path}/pause`, { note: note.value.trim() });
        // said as the page comes back (a notice before route() was cleared by it: console h43 F7)
        go(location.hash, paused ? `The schedules of ${id} run again.` : `The schedules of ${id} are paused.`);
      } catch (error) { notice(error.message); }
    };
    const said = paused
      ? `schedules paused since ${when(paused.since)}${paused.by ? ` by ${paused.by}` : ""}${paused.note ? `: ${paused.note}` : ""}: their ticks start no run `
      : "schedules running ";
    return h("li", { class: paused ? "paused" : "muted", "data-schedules": paused ? "paused" : "running" }, said,
      paused ? null : note, " ",
      h("button", { type: "button", "data-pause": paused ? "resume" : "pause", text: paused ? "Resume schedules" : "Pause schedules", onclick: toggle }));
  }

  async function workflowsPage() {
    const mine = generation;
    const known = await flows(true);
    const cards = [];
    for (const flow of known) {
      const timed = flow.triggers.some((t) => t.kind === "schedule" || t.kind === "interval");
      const fires = timed ? await api("GET", `/flows/${encodeURIComponent(flow.id)}/next-fires?count=3`).catch(orNone(null)) : null;
      if (mine !== generation) return;
      let scheduleIndex = 0;
      const named = [];  // each schedule as fire names it
      const items = flow.triggers.map((trigger) => {
        const li = h("li", { "data-trigger": trigger.kind });
        if (trigger.kind === "event") {
          li.append(h("a", { href: `#/events?name=${encodeURIComponent(trigger.event)}`, text: triggerText(trigger) }));
        } else {
          li.append(triggerText(trigger));
        }
        if (trigger.kind === "schedule" || trigger.kind === "interval") {
          const next = fires ? fires.schedules[scheduleIndex++] : null;
          const zone = trigger.kind === "schedule" ? trigger.timezone || "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone;
          if (next) li.append(h("div", { class: "fires", text: `next: ${next.next.map((t) => `${whenIn(t, zone)} (${ago(t)})`).join(" · ") || "none"}` }));
          // a cron schedule named as the command line names it: with its zone only where
          // the flow declares the expression in two zones
          const twice = flow.triggers.filter((t) => t.kind === "schedule" && t.cron === trigger.cron).length > 1;
          const schedule = trigger.kind === "schedule" ? (twice ? `${trigger.cron} (${trigger.timezone || "UTC"})` : trigger.cron) : `every ${trigger.every} s`;
          named.push(schedule);
          li.append(" ", h("button", { type: "button", "data-fire": schedule, text: "Fire now", onclick: async () => {
            try {
              const fired = await api("POST", `/flows/${encodeURIComponent(flow.id)}/fire`, { schedule });
              go(`#/runs/${encodeURIComponent(fired.run_id)}`);
            } catch (error) { notice(error.message); }
          } }));
        }
        return li;
      });
      const byHand = "by hand: POST /runs, cronflow-actors run, or below";
      // a flow with several schedules names one (newcomer h32 F4: the command shown was refused)
      const fire = `cronflow-actors fire ${flow.id}` + (named.length > 1 ? ` --schedule '${named[0]}' (or another of its schedules)` : "");
      items.push(h("li", { class: "muted", text: timed
        ? `${byHand}; a tick now: Fire now, POST /flows/${flow.id}/fire, or ${fire}`
        : byHand }));
      if (timed && fires) items.push(schedulesPause(flow.id, fires.paused));
      const payload = h("textarea", { placeholder: "payload (JSON), optional" });
      const limits = [flow.concurrency ? `concurrency ${flow.concurrency}` : null,
        flow.rate_limit ? `at most ${flow.rate_limit.count} per ${duration(flow.rate_limit.per_seconds)}` : null,
        flow.queue ? `queue ${flow.queue}` : null].filter(Boolean);
      cards.push(h("div", { class: "card", "data-flow": flow.id },
        h("h2", {}, flow.name, flow.name !== flow.id ? h("span", { class: "muted mono", text: ` ${flow.id}` }) : null,
          flow.version ? h("span", { class: "kind", text: flow.version }) : null),
        flow.description ? h("p", { text: flow.description }) : null,
        (flow.versions || []).length > 1 ? h("p", { class: "muted", "data-versions": "", text: `also registered: ${flow.versions.filter((v) => !v.current).map((v) => v.deprecated ? `${v.version} (deprecated)` : v.version).join(", ")} (its runs go on; new runs take ${flow.version})` }) : null,
        flow.tags.length ? h("p", { class: "muted", text: `tags: ${flow.tags.join(", ")}` }) : null,
        limits.length ? h("p", { class: "muted", text: limits.join(" · ") }) : null,
        h("strong", { text: "Triggers" }),
        h("ul", { class: "triggers" }, items),
        h("details", {}, h("summary", { text: "start a run" }), payload,
          h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: "Start", onclick: async () => {
            try {
              const started = await api("POST", "/runs", { workflow: flow.id, payload: parseJson(payload.value, "the payload") });
              go(`#/runs/${encodeURIComponent(started.run_id)}`);
            } catch (error) { notice(error.message); }
          } }))),
        h("p", {}, h("a", { href: `#/runs?workflow=${encodeURIComponent(flow.id)}`, text: "runs of this flow →" }))));
    }
    const nets = (await api("GET", "/nets").catch(orNone({ nets: [] }))).nets;
    if (mine !== generation) return;
    const netCards = nets.map((described) => h("div", { class: "card", "data-net": described.name },
      h("h2", {}, described.name, h("span", { class: "kind", text: described.version || "every version deprecated" }), h("span", { class: "muted", text: " net" })),
      h("p", { class: "muted", text: `versions: ${described.versions.map((v) => described.deprecated.includes(v) ? `${v} (deprecated)` : v).join(", ")}` }),
      described.migrations.length ? h("p", { class: "muted", text: `migrations: ${described.migrations.map(([from, to]) => `${from} → ${to}`).join(", ")}` }) : null,
      h("p", { class: "muted", text: `callers may: ${described.actions.join(", ") || "nothing (no action declared)"}` }),
      ...Object.entries(described.item_actions || {}).map(([task, verbs]) =>
        h("p", { class: "muted", "data-item-actions": task, text: `work items of ${task}: ${verbs.join(", ")}` })),
      described.actions.includes("initialize") && described.version ? netStart(described.name) : null,
      h("p", {}, h("a", { href: `#/runs?workflow=${encodeURIComponent(described.name)}`, text: "instances of this net →" }))));
    main.replaceChildren(h("h1", { text: "Workflows" }),
      cards.length ? h("div", { id: "flows" }, cards) : h("p", { class: "muted card", text: "No flow is registered." }),
      ...(netCards.length ? [h("div", { id: "nets" }, netCards)] : []));  // (a null: "null")
  }

  // A net instance started from its card, as POST /workflows does (newcomer h33 F11: only the
  // flows' cards could start one); its id optional, to start it once
  function netStart(name) {
    const payload = h("textarea", { name: "payload", placeholder: '{"any": "payload"}' });
    const ident = h("input", { name: "instance_id", placeholder: "instance id (optional)" });
    return h("details", { "data-start": name }, h("summary", { text: "start an instance" }), payload, ident,
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: "Start", onclick: async () => {
        try {
          const body = { workflow: name, payload: parseJson(payload.value, "the payload") };
          if (ident.value.trim()) body.instance_id = ident.value.trim();
          const started = await api("POST", "/workflows", body);
          go(`#/runs/${encodeURIComponent(started.workflow_id)}`);
        } catch (error) { notice(error.message); }
      } })));
  }

  // -- events ----------------------------------------------------------------------------------

  async function eventsPage(params) {
    const known = await flows().catch(orNone([]));
    const nets = (await api("GET", "/nets").catch(orNone({ nets: [] }))).nets;
    const events = [...new Set(known.flatMap((f) => f.triggers.filter((t) => t.kind === "event").map((t) => t.event)))].sort();
    // and the events steps wait for, a flow's or a net's (newcomer h33 F8: none offered)
    const awaited = [...new Set([...known, ...nets].flatMap((w) => w.awaits || []))].filter((e) => !events.includes(e)).sort();
    const name = h("input", { id: "event-name", list: "event-names", value: params.get("name") || "", required: true, placeholder: "event name" });
    const payload = h("textarea", { id: "event-payload", placeholder: '{"order_id": "o-1"}' });
    const result = h("div", { id: "event-result" });
    const form = h("form", { class: "card", onsubmit: async (event) => {
      event.preventDefault();
      notice("");
      try {
        const body = parseJson(payload.value, "the payload");
        const published = await api("POST", `/events/${encodeURIComponent(name.value.trim())}`, body);
        // what it did not do is said too: a filter that raised read "no waiting step took
        // it" (console h43 F11)
        const raised = published.filter_errors || [];
        const dropped = published.not_kept || [];
        const runLi = (said, id, after) => h("li", {}, said, h("a", { href: `#/runs/${encodeURIComponent(id)}`, class: "mono", text: id }), after || "");
        result.replaceChildren(h("div", { class: "card" },
          h("h2", { text: `Published “${name.value.trim()}”` }),
          published.started.length || published.delivered.length || published.held.length || raised.length || dropped.length
            ? h("ul", {}, [["started run ", published.started], ["delivered to the waiting step of run ", published.delivered],
              ["kept for run ", published.held]].flatMap(([said, ids]) => ids.map((id) => runLi(said, id))),
              raised.map((r) => runLi("not taken: the waiting step's filter of run ", r.run_id, ` raised ${visible(r.detail)}; it waits on`)),
              dropped.map((id) => runLi("not kept for run ", id, ": it keeps no more events (the server's log says why)")))
            : h("p", { class: "muted", text: "No flow started for it, and no waiting step took it." }),
          published.note ? h("p", { class: "muted", text: visible(published.note) }) : null,
          published.refused.length ? h("pre", { class: "error", text: json(published.refused) }) : null));
      } catch (error) { notice(error.message); }
    } },
    h("label", {}, "Event", name, h("datalist", { id: "event-names" }, [...events, ...awaited].map((e) => h("option", { value: e })))),
    h("label", {}, "Payload (JSON)", payload),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "publish", text: "Publish" })));
    main.replaceChildren(h("h1", { text: "Publish an event" }),
      h("p", { class: "muted", id: "event-names-said", text: (events.length ? `Flows start on: ${events.join(", ")}.` : "No registered flow starts on an event.")
        + (awaited.length ? ` Steps wait for: ${awaited.join(", ")}.` : "") }),
      form, result);
  }

  window.addEventListener("hashchange", route);
  showWho();
  route();
})();
