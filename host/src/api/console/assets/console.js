// The Aegis web console: a browser client of the REST API (`/v1/...`), with the API key the
// user gives. Every value from the API is put on the page as text (`textContent`), never as
// markup, so nothing an execution holds can run in the page. Feature modules add pages with
// `Aegis.page(...)` from their own scripts, loaded after this one.
"use strict";

const Aegis = (() => {
  const KEY = "aegis.apiKey";
  const pages = [];
  const main = () => document.getElementById("main");

  /** An element: `h("a", {href: "/ui/"}, "text", child)`; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    return put(el, ...children);
  }

  /** Appends `children` to `el` as `h` does: nested lists flattened, absent ones skipped. */
  function put(el, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** A link inside the console, followed without reloading the page. */
  function link(path, ...children) {
    return h("a", { href: path, onclick: (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      go(path);
    } }, ...children);
  }

  function go(path) {
    history.pushState(null, "", path);
    route();
  }

  /** The API answered 401: the page asks for a key, then draws itself again. */
  class NeedKey extends Error {}

  /** An API error answer: `{"error": {"code", "message"}}`. */
  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(`${status} ${e.code || ""}: ${e.message || "request failed"}`);
      this.status = status;
      this.code = e.code;
    }
  }

  /** Calls the REST API with the stored key; answers the JSON body. */
  async function api(path, options = {}) {
    const headers = { accept: "application/json" };
    const key = localStorage.getItem(KEY);
    if (key) headers.authorization = `Bearer ${key}`;
    let body;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const response = await fetch(path, { method: options.method || "GET", headers, body });
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (response.status === 401) throw new NeedKey(json && json.error ? json.error.message : "");
    if (!response.ok) throw new ApiError(response.status, json);
    return json;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : "";
  }

  const time = (ts) => (ts ? new Date(ts).toLocaleString() : "");
  const status = (s) => h("span", { class: `status ${s}` }, s);

  /** A JSON value as indented text. */
  function json(value) {
    return h("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  }

  /** A history `{Payload, Truncated}` as text, its JSON indented when it is JSON. */
  function payload(p) {
    if (!p || p.Payload === undefined || p.Payload === null) return null;
    let text = p.Payload;
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as it is */ }
    return h("pre", {}, text, p.Truncated ? "\n… (truncated)" : "");
  }

  /** Registers a page: `{name, title, nav, render(el, rest, params)}` for `/ui/<name>/...`. */
  function page(spec) {
    pages.push(spec);
  }

  function keyForm(message) {
    const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true,
      placeholder: "the tenant's API key", "aria-label": "API key" });
    const form = h("form", { class: "login", onsubmit: (e) => {
      e.preventDefault();
      localStorage.setItem(KEY, input.value.trim());
      route();
    } },
    h("h1", {}, "API key"),
    h("p", {}, "The console acts with a tenant's API key, as the REST API does. ",
      "It is kept in this browser only."),
    message ? h("p", { class: "error" }, message) : null,
    h("p", {}, input),
    h("button", { type: "submit" }, "Continue"));
    main().replaceChildren(form);
    input.focus();
  }

  async function who() {
    const el = document.getElementById("who");
    try {
      const me = await api("/v1/tenant");
      const forget = localStorage.getItem(KEY)
        ? h("button", { class: "secondary", onclick: () => { localStorage.removeItem(KEY); route(); } },
          "Forget key")
        : null;
      el.replaceChildren(`tenant ${me.name || me.tenant_id} `, forget);
    } catch {
      el.replaceChildren();
    }
  }

  function drawNav(here) {
    const entries = [["executions", "Executions"], ["events", "Events"]]
      .concat(pages.filter((p) => p.nav).map((p) => [p.name, p.title]));
    document.getElementById("nav").replaceChildren(...entries.map(([name, title]) => {
      const a = link(`/ui/${name}`, title);
      if (name === here) a.className = "here";
      return a;
    }));
  }

  /** Draws the page the address names. */
  async function route() {
    const rest = location.pathname.replace(/^\/ui\/?/, "").split("/").filter(Boolean)
      .map(decodeURIComponent);
    const params = new URLSearchParams(location.search);
    const name = rest[0] || "executions";
    drawNav(name);
    const el = h("div", {});
    main().replaceChildren(el);
    try {
      if (name === "executions" && rest[1]) await execution(el, rest[1]);
      else if (name === "executions") await executions(el, params);
      else if (name === "events") await events(el, params);
      else {
        const found = pages.find((p) => p.name === name);
        if (!found) throw new Error(`no page ${location.pathname}`);
        await found.render(el, rest.slice(1), params);
      }
      who();
    } catch (e) {
      if (e instanceof NeedKey) {
        keyForm(localStorage.getItem(KEY) ? `That key was refused: ${e.message}` : null);
        document.getElementById("who").replaceChildren();
      } else {
        el.append(h("p", { class: "error" }, e.message));
      }
    }
  }

  const STATUSES = ["", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];

  /** An RFC 3339 time as a `datetime-local` input's value (local time), and back. */
  const toLocal = (ts) => {
    if (!ts) return "";
    const d = new Date(ts);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  };
  const fromLocal = (v) => (v ? new Date(v).toISOString() : "");

  async function executions(el, params) {
    const filters = {};
    for (const name of ["workflow", "status", "created_after", "created_before"]) {
      filters[name] = params.get(name) || "";
    }
    const workflow = h("input", { name: "workflow", value: filters.workflow, placeholder: "any" });
    const statusSel = h("select", { name: "status" },
      STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s || "any")));
    const after = h("input", { type: "datetime-local", name: "created_after", value: toLocal(filters.created_after) });
    const before = h("input", { type: "datetime-local", name: "created_before", value: toLocal(filters.created_before) });
    const form = h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      go(`/ui/executions${query({ workflow: workflow.value.trim(), status: statusSel.value,
        created_after: fromLocal(after.value), created_before: fromLocal(before.value) })}`);
    } },
    h("label", {}, "Component", workflow), h("label", {}, "Status", statusSel),
    h("label", {}, "Created after", after), h("label", {}, "Created before", before),
    h("button", { type: "submit" }, "Filter"));
    const list = await api(`/v1/executions${query({ ...filters, cursor: params.get("cursor"), limit: 50 })}`);
    const rows = list.executions.map((x) => h("tr", {},
      h("td", {}, link(`/ui/executions/${encodeURIComponent(x.execution_id)}`, x.execution_id)),
      h("td", {}, `${x.workflow} v${x.version}`), h("td", {}, x.name), h("td", {}, status(x.status)),
      h("td", {}, time(x.created_at)), h("td", {}, time(x.updated_at))));
    put(el, h("h1", {}, "Executions"), form,
      rows.length
        ? h("table", { id: "executions" },
          h("thead", {}, h("tr", {}, ["Execution", "Component", "Name", "Status", "Created", "Updated"]
            .map((t) => h("th", {}, t)))),
          h("tbody", {}, rows))
        : h("p", { class: "muted", id: "no-executions" }, "No executions."),
      list.next_cursor
        ? h("p", {}, link(`/ui/executions${query({ ...filters, cursor: list.next_cursor })}`, "Next page"))
        : null);
  }

  /** Every page of a paginated list, up to `max` pages. */
  async function all(path, field, next, max = 20) {
    let items = [];
    let after = null;
    for (let i = 0; i < max; i++) {
      const sep = path.includes("?") ? "&" : "?";
      const page = await api(after === null ? path : `${path}${sep}after=${after}`);
      items = items.concat(page[field]);
      if (page[next] === null || page[next] === undefined || page[field].length === 0) break;
      after = page[next];
    }
    return items;
  }

  const KINDS = /^(Execution|Step|Wait|Callback|Context|ChainedInvoke|Invocation)(.*)$/;

  /** The history's events grouped by operation, in the order each operation started. */
  function operations(history) {
    const ops = new Map();
    for (const e of history) {
      if (!e.Id) continue;
      const [, kind, what] = KINDS.exec(e.EventType) || [null, e.EventType, ""];
      let op = ops.get(e.Id);
      if (!op) {
        op = { id: e.Id, name: e.Name, parent: e.ParentId, kind, subType: e.SubType, events: [] };
        ops.set(e.Id, op);
      }
      op.name = op.name || e.Name;
      op.events.push({ ...e, what });
    }
    return [...ops.values()];
  }

  /** What one event of an operation says, in a line and its payloads. */
  function eventLine(e) {
    const d = e[`${e.EventType}Details`] || {};
    const facts = [];
    if (d.RetryDetails) {
      facts.push(`attempt ${d.RetryDetails.CurrentAttempt}`);
      if (d.RetryDetails.NextAttemptDelaySeconds !== null && d.RetryDetails.NextAttemptDelaySeconds !== undefined)
        facts.push(`retry in ${d.RetryDetails.NextAttemptDelaySeconds}s`);
    }
    if (d.Duration !== undefined) facts.push(`wait ${d.Duration}s`);
    if (d.ScheduledEndTimestamp) facts.push(`until ${time(d.ScheduledEndTimestamp)}`);
    if (d.CallbackId) facts.push(`callback ${d.CallbackId}`);
    if (d.Timeout) facts.push(`timeout ${d.Timeout}s`);
    if (d.FunctionName) facts.push(`invokes ${d.FunctionName}`);
    const error = d.Error && d.Error.Payload
      ? h("pre", {}, `${d.Error.Payload.ErrorType || ""}: ${d.Error.Payload.ErrorMessage || ""}`)
      : null;
    return h("li", {}, h("span", { class: `status ${e.what}` }, e.what || e.EventType), " ",
      h("span", { class: "muted" }, time(e.EventTimestamp)), facts.length ? ` · ${facts.join(" · ")}` : "",
      payload(d.Input), payload(d.Result), error);
  }

  function timeline(ops) {
    const byParent = new Map();
    for (const op of ops) {
      const key = op.parent && ops.some((o) => o.id === op.parent) ? op.parent : "";
      if (!byParent.has(key)) byParent.set(key, []);
      byParent.get(key).push(op);
    }
    const draw = (op) => {
      const last = op.events[op.events.length - 1];
      const attempts = op.events.filter((e) => {
        const d = e[`${e.EventType}Details`] || {};
        return d.RetryDetails;
      }).length;
      const children = (byParent.get(op.id) || []).map(draw);
      return h("div", { class: `op ${last.what}`, "data-op": op.id },
        h("div", { class: "head" }, h("span", { class: "kind" }, op.subType || op.kind),
          h("strong", {}, op.name || op.id), status(last.what),
          attempts > 1 ? h("span", { class: "muted" }, `${attempts} attempts`) : null,
          h("span", { class: "muted" }, time(op.events[0].EventTimestamp))),
        h("details", {}, h("summary", {}, `${op.events.length} events`),
          h("ul", {}, op.events.map(eventLine))),
        children.length ? h("div", { class: "child" }, children) : null);
    };
    return h("div", { id: "timeline" }, (byParent.get("") || []).map(draw));
  }

  async function execution(el, id) {
    const path = `/v1/executions/${encodeURIComponent(id)}`;
    const x = await api(path);
    const [history, evts, logs] = await Promise.all([
      all(`${path}/history?limit=500`, "events", "next_after"),
      all(`/v1/events?execution_id=${encodeURIComponent(id)}&limit=500`, "events", "next_after", 5),
      all(`${path}/logs?limit=1000`, "records", "next_after", 5),
    ]);
    put(el, h("h1", {}, `Execution ${x.execution_id}`),
      h("dl", { class: "fields" },
        h("dt", {}, "Status"), h("dd", { id: "execution-status" }, status(x.status)),
        h("dt", {}, "Component"), h("dd", {}, link(`/ui/executions${query({ workflow: x.workflow })}`, x.workflow), ` v${x.version}`),
        h("dt", {}, "Name"), h("dd", {}, x.name),
        h("dt", {}, "Created"), h("dd", {}, time(x.created_at)),
        h("dt", {}, "Updated"), h("dd", {}, time(x.updated_at))),
      h("h2", {}, "Input"), json(x.input),
      x.result !== null ? [h("h2", {}, "Result"), json(x.result)] : null,
      x.error ? [h("h2", {}, "Error"), json(x.error)] : null,
      x.pending_callbacks.length
        ? [h("h2", {}, "Waiting for callbacks"), h("ul", {}, x.pending_callbacks.map((c) =>
          h("li", {}, h("strong", {}, c.name), " ", h("code", {}, c.callback_id))))]
        : null,
      h("h2", {}, "Timeline"), timeline(operations(history)),
      h("h2", {}, "Events"), eventTable(evts),
      h("h2", {}, "Logs"), logs.length
        ? h("pre", { id: "logs" }, logs.map((l) => `${l.level} ${l.message}`).join("\n"))
        : h("p", { class: "muted" }, "No log lines."),
      h("details", {}, h("summary", {}, `History (${history.length} events)`), json(history)));
  }

  function eventTable(list, withExecution) {
    if (!list.length) return h("p", { class: "muted" }, "No events.");
    return h("table", { class: "events" },
      h("thead", {}, h("tr", {}, ["#", "Time", "Kind", withExecution ? "Execution" : null, "Data"]
        .filter(Boolean).map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map((e) => h("tr", {},
        h("td", {}, e.seq), h("td", {}, time(e.created_at)), h("td", {}, e.kind),
        withExecution ? h("td", {}, link(`/ui/executions/${encodeURIComponent(e.execution_id)}`, e.execution_id)) : null,
        h("td", {}, json(e.data))))));
  }

  async function events(el, params) {
    const page = await api(`/v1/events${query({ after: params.get("after"), limit: 100 })}`);
    put(el, h("h1", {}, "Events"), eventTable(page.events, true),
      page.events.length ? h("p", {}, link(`/ui/events${query({ after: page.next_after })}`, "Next page")) : null);
  }

  window.addEventListener("popstate", route);
  document.addEventListener("DOMContentLoaded", route);

  return { api, h, put, link, go, json, time, status, page, query, ApiError };
})();
