// Live view of one flyte_nb run: header, slot pools, group progress, recent results and errors.
// The Python side sends one `state` snapshot at most ~10 times a second; this module redraws
// from it, ticks the elapsed time locally, and sends {type: "abort"} / {type: "output"} / {type: "report"}
// messages. Reports (flyte.report) show in sandboxed frames in their own section, redrawn only when a
// report changes, so a frame is not reloaded ten times a second.

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const PHASE_ORDER = ["running", "waiting", "queued", "succeeded", "cached", "failed", "timed_out", "cancelled"];
const MAX_CELLS = 64;

function formatSeconds(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.floor(seconds % 60)} s`;
}

function elapsed(state, offset) {
  if (!state.started_at) return 0;
  const end = state.ended_at ?? (Date.now() / 1000 - offset);
  return Math.max(0, end - state.started_at);
}

function header(state, model, offset) {
  const live = state.phase === "running" || state.phase === "queued";
  const chips = PHASE_ORDER.filter((p) => state.counts[p]).map((p) =>
    h("span", { class: `flyte-nb-chip flyte-nb-${p}` }, `${state.counts[p]} ${p.replace("_", " ")}`));
  const cancel = h("button", {
    class: "flyte-nb-cancel",
    title: "Abort the run: cancel every queued and running action",
    onclick: (event) => { event.target.disabled = true; model.send({ type: "abort" }); },
  }, "Cancel");
  if (!live) cancel.disabled = true;
  return h("div", { class: "flyte-nb-header" },
    h("span", { class: "flyte-nb-name" }, state.name),
    h("span", { class: `flyte-nb-phase flyte-nb-${state.phase}` }, state.phase),
    h("span", { class: "flyte-nb-elapsed" }, formatSeconds(elapsed(state, offset))),
    h("span", { class: "flyte-nb-meta" }, `${state.driver} · ${state.backend} · ${state.actions} actions`),
    state.dashboard ? h("a", { class: "flyte-nb-link", href: state.dashboard, target: "_blank", rel: "noopener" }, "Dask dashboard") : null,
    h("span", { class: "flyte-nb-chips" }, chips),
    cancel);
}

// A rate pool: units granted per second over its window against the limit, what is available now.
function ratePool(stat) {
  const label = h("span", { class: "flyte-nb-label", title: stat.name }, stat.name);
  const width = Math.min(100, Math.round((100 * stat.granted_per_s) / stat.rate));
  const drawing = h("span", { class: "flyte-nb-bar" },
    h("span", { class: "flyte-nb-fill flyte-nb-running-fill", style: `width:${width}%` }));
  const text = `${stat.granted_per_s}/s of ${+stat.rate.toFixed(3)}/s · ${stat.available} available` +
    (stat.waiting ? ` · ${stat.waiting} waiting` : "");
  return h("div", { class: "flyte-nb-row flyte-nb-pool flyte-nb-rate-pool", "data-pool": stat.name }, label, drawing,
    h("span", { class: "flyte-nb-text" }, text));
}

function pool(stat) {
  if (stat.rate !== undefined) return ratePool(stat);
  const label = h("span", { class: "flyte-nb-label", title: stat.name }, stat.name);
  const capacity = stat.capacity;
  let drawing;
  if (capacity !== null && capacity <= MAX_CELLS) {
    const cells = [];
    for (let i = 0; i < capacity; i++) {
      cells.push(h("span", { class: i < stat.holders ? "flyte-nb-slot flyte-nb-held" : "flyte-nb-slot" }));
    }
    drawing = h("span", { class: "flyte-nb-slots" }, cells);
  } else {
    const width = capacity === null ? 100 : Math.round((100 * stat.holders) / capacity);
    drawing = h("span", { class: "flyte-nb-bar" },
      h("span", { class: "flyte-nb-fill flyte-nb-running-fill", style: `width:${width}%` }));
  }
  const text = `${stat.holders}/${capacity ?? "∞"} held` + (stat.waiting ? ` · ${stat.waiting} waiting` : "");
  return h("div", { class: "flyte-nb-row flyte-nb-pool" }, label, drawing, h("span", { class: "flyte-nb-text" }, text));
}

// Groups arrive in tree order: each under the action whose body made it. A group made below the
// driver gets a header row naming that action (a2 stage · running) and is indented by its depth.
function groupTree(groups) {
  const rows = [];
  let parent = null;
  for (const g of groups) {
    const indent = `padding-left:${Math.max(0, (g.depth ?? 1) - 1) * 14}px`;
    if ((g.depth ?? 1) > 1 && g.parent !== parent) {
      rows.push(h("div", { class: "flyte-nb-tree-parent", "data-action": g.parent, style: `padding-left:${Math.max(0, g.depth - 2) * 14}px` },
        h("span", { class: "flyte-nb-action" }, `${g.parent} ${g.parent_task}`),
        h("span", { class: `flyte-nb-phase flyte-nb-${g.parent_phase}` }, g.parent_phase)));
    }
    parent = g.parent;
    const row = group(g);
    row.firstChild.setAttribute("style", indent);
    row.setAttribute("data-parent", g.parent ?? "");
    rows.push(row);
  }
  return rows;
}

function group(g) {
  const known = g.succeeded + g.failed + g.cancelled + g.running + g.queued;
  const total = Math.max(g.total ?? 0, known, 1);
  const segment = (n, kind) => n ? h("span", { class: `flyte-nb-fill flyte-nb-${kind}-fill`, style: `width:${(100 * n) / total}%` }) : null;
  const bar = h("span", { class: "flyte-nb-bar" },
    segment(g.succeeded, "succeeded"), segment(g.failed, "failed"), segment(g.running, "running"), segment(g.queued, "queued"));
  const parts = [`${g.succeeded}/${g.total ?? "?"} done`];
  if (g.failed) parts.push(`${g.failed} failed`);
  if (g.running) parts.push(`${g.running} running`);
  if (g.queued) parts.push(`${g.queued} queued`);
  parts.push(`${g.rate}/s`);
  return h("div", { class: "flyte-nb-row flyte-nb-group", "data-group": g.name },
    h("span", { class: "flyte-nb-label", title: g.name }, g.name), bar, h("span", { class: "flyte-nb-text" }, parts.join(" · ")));
}

export default {
  render({ model, el }) {
    const outputs = new Map(); // action name → captured text
    const open = new Set(); // errors the user expanded
    let offset = 0;
    const root = h("div", { class: "flyte-nb-run" });
    const reportsRoot = h("div", { class: "flyte-nb-reports" });
    const pages = new Map(); // action → {html, version} of the reports the user opened
    let reportsDrawn = "";
    el.append(root, reportsRoot);

    function drawReports(force) {
      const state = model.get("state");
      const listed = (state && state.reports) || [];
      const key = JSON.stringify(listed) + [...pages.entries()].map(([a, p]) => `${a}:${p.version}:${p.html === null}`).join();
      if (!force && key === reportsDrawn) return;
      reportsDrawn = key;
      if (!listed.length) { reportsRoot.replaceChildren(); return; }
      const rows = listed.map((r) => {
        const page = pages.get(r.action);
        if (page && page.version < r.version && !page.pending) { page.pending = true; model.send({ type: "report", action: r.action }); }
        const toggle = h("a", {
          class: "flyte-nb-link flyte-nb-report-toggle", href: "#",
          onclick: (event) => {
            event.preventDefault();
            if (pages.has(r.action)) pages.delete(r.action);
            else { pages.set(r.action, { html: null, version: r.version, pending: true }); model.send({ type: "report", action: r.action }); }
            drawReports(true);
          },
        }, page ? "hide report" : "show report");
        const frame = page && page.html !== null
          ? h("iframe", { class: "flyte-nb-report-frame", sandbox: "allow-scripts", srcdoc: page.html, style: "width:100%;height:360px;border:1px solid #ccc" })
          : null;
        return h("div", { class: "flyte-nb-report", "data-action": r.action, "data-version": r.version },
          h("span", { class: "flyte-nb-action" }, r.task), " ",
          h("span", { class: "flyte-nb-report-tabs" }, r.tabs.join(" · ")), " ", toggle, frame);
      });
      reportsRoot.replaceChildren(h("div", { class: "flyte-nb-section" }, h("div", { class: "flyte-nb-title" }, "reports"), rows));
    }

    const outputLink = (action) => h("a", {
      class: "flyte-nb-link", href: "#",
      onclick: (event) => {
        event.preventDefault();
        if (outputs.has(action)) { outputs.delete(action); draw(); }
        else model.send({ type: "output", action });
      },
    }, outputs.has(action) ? "hide output" : "output");
    const outputBox = (action) => outputs.has(action) ? h("pre", { class: "flyte-nb-output" }, outputs.get(action)) : null;

    function draw() {
      const state = model.get("state");
      if (!state || !state.name) return;
      const sections = [header(state, model, offset)];
      if (state.pools.length) sections.push(h("div", { class: "flyte-nb-section" }, h("div", { class: "flyte-nb-title" }, "slots"), state.pools.map(pool)));
      if (state.waiting && state.waiting.length) {
        sections.push(h("div", { class: "flyte-nb-section flyte-nb-waiting" }, h("div", { class: "flyte-nb-title" }, "waiting"),
          state.waiting.map((w) => h("div", { class: "flyte-nb-row flyte-nb-wait", "data-reason": w.reason },
            h("span", { class: "flyte-nb-text" }, `${w.count} ${w.reason}`)))));
      }
      if (state.groups.length) sections.push(h("div", { class: "flyte-nb-section" }, h("div", { class: "flyte-nb-title" }, "groups"), groupTree(state.groups)));
      if (state.results.length) {
        sections.push(h("div", { class: "flyte-nb-section" }, h("div", { class: "flyte-nb-title" }, "latest results"),
          state.results.map((r) => h("div", { class: "flyte-nb-result" },
            h("span", { class: "flyte-nb-action" }, `${r.action} ${r.task}`), h("code", {}, r.text), " ", outputLink(r.action), outputBox(r.action)))));
      }
      if (state.errors.length) {
        sections.push(h("div", { class: "flyte-nb-section" }, h("div", { class: "flyte-nb-title" }, "errors"),
          state.errors.map((e) => {
            const details = h("details", { class: "flyte-nb-error", ontoggle: (event) => { event.target.open ? open.add(e.action) : open.delete(e.action); } },
              h("summary", {}, h("span", { class: "flyte-nb-action" }, `${e.action} ${e.task}`), `${e.type}: ${e.message}`),
              h("pre", { class: "flyte-nb-traceback" }, e.traceback), outputLink(e.action), outputBox(e.action));
            if (open.has(e.action)) details.open = true;
            return details;
          })));
      }
      if (state.error) sections.push(h("div", { class: "flyte-nb-run-error" }, state.error));
      root.replaceChildren(...sections);
    }

    const onState = () => {
      const state = model.get("state");
      if (state && state.server_time) offset = Date.now() / 1000 - state.server_time;
      draw();
      drawReports(false);
    };
    const onMessage = (msg) => {
      if (msg && msg.type === "output") { outputs.set(msg.action, msg.text); draw(); }
      if (msg && msg.type === "report" && pages.has(msg.action)) {
        const listed = (model.get("state").reports || []).find((r) => r.action === msg.action);
        pages.set(msg.action, { html: msg.html, version: listed ? listed.version : 0, pending: false });
        drawReports(true);
      }
    };
    model.on("change:state", onState);
    model.on("msg:custom", onMessage);
    const ticker = setInterval(() => {
      const state = model.get("state");
      const node = root.querySelector(".flyte-nb-elapsed");
      if (node && state) node.textContent = formatSeconds(elapsed(state, offset));
    }, 500);
    onState();
    return () => {
      clearInterval(ticker);
      model.off("change:state", onState);
      model.off("msg:custom", onMessage);
    };
  },
};
