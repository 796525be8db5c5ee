// detnet live view (served at /ui by controller/api/routers/ui.py; see docs/live-view.md).
// Plain JavaScript and SVG: no framework, no map library, nothing loaded from outside this controller.
// Everything shown comes from the REST API with the operator's token (admin: all; a tenant: its own);
// live updates come from /v1/events/stream (server-sent events read with fetch, so the token travels
// in the Authorization header, never in a URL).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LIVE = document.body.dataset.live === "1";
const BE_HEADROOM = parseFloat(document.body.dataset.beHeadroom) || 1;
const TOKEN_KEY = "detnet-token";

const state = {
  token: null, who: null, topo: null, schedule: null, reservations: [], selected: null, selectedLink: null,
  whatIf: null, since: null, stream: null, refreshing: null, again: false, proj: null, drawnTopo: null,
};

// ----- small helpers ---------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, parent = null, text = null) {
  const ns = ["svg", "g", "line", "circle", "text", "rect", "polyline", "title"].includes(tag) ? SVG : null;
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function fmtBps(b) {
  if (b === null || b === undefined) return "-";
  const units = [[1e12, "Tb/s"], [1e9, "Gb/s"], [1e6, "Mb/s"], [1e3, "kb/s"]];
  for (const [f, u] of units) if (Math.abs(b) >= f) return `${+(b / f).toPrecision(4)} ${u}`;
  return `${b} b/s`;
}

function fmtNs(ns) {
  if (ns === null || ns === undefined) return "-";
  if (ns >= 1e6) return `${+(ns / 1e6).toFixed(3)} ms`;
  if (ns >= 1e3) return `${+(ns / 1e3).toFixed(3)} us`;
  return `${ns} ns`;
}

const pct = (x) => `${+(100 * x).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
const key = (u, v) => `${u}|${v}`;

function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                   cache: "no-store" });
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new Error(data && data.detail ? data.detail : `${method} ${path}: HTTP ${resp.status}`);
    err.status = resp.status;
    err.body = data;
    throw err;
  }
  return data;
}

// ----- signing in: /ui#token=TOKEN or the token field ------------------------------------------------
function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search);   // the token leaves the address bar
  return decodeURIComponent(m[1]);
}

async function signIn(token) {
  if (state.stream) state.stream.abort();
  Object.assign(state, { token, who: null, topo: null, schedule: null, reservations: [], selected: null,
                         selectedLink: null, whatIf: null, since: null, stream: null });
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    const me = await api("GET", "/v1/tenants/me");
    state.who = { admin: false, tenant: me.id, name: me.name };
  } catch (e) {
    if (e.status === 403) state.who = { admin: true };
    else { state.token = null; sessionStorage.removeItem(TOKEN_KEY); $("who").textContent = "not signed in";
           say(`sign-in failed: ${e.message}`, true); return; }
  }
  $("who").textContent = state.who.admin ? "admin" : `tenant ${state.who.tenant} (${state.who.name})`;
  $("f-tenant-label").hidden = !state.who.admin;
  $("wf-tenant-label").hidden = !state.who.admin;
  say("");
  if (LIVE) openStream();
  else { setLive("off", "live: off (live=0)"); await refresh(); }
}

// ----- live updates: /v1/events/stream ------------------------------------------------------------------
function setLive(cls, text) {
  const b = $("live");
  b.className = `badge ${cls}`;
  b.textContent = text;
}

async function openStream() {
  const ctrl = new AbortController();
  state.stream = ctrl;
  setLive("wait", "live: connecting");
  const query = state.since === null ? "" : `?since=${state.since}`;
  try {
    const resp = await fetch(`/v1/events/stream${query}`, { headers: { Authorization: `Bearer ${state.token}` },
                                                           signal: ctrl.signal, cache: "no-store" });
    if (!resp.ok) throw new Error(`event stream: HTTP ${resp.status}`);
    setLive("on", "live");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        onStreamBlock(buf.slice(0, end));
        buf = buf.slice(end + 2);
      }
    }
  } catch (e) {
    if (ctrl.signal.aborted) return;
    say(e.message, true);
  }
  if (ctrl.signal.aborted || state.stream !== ctrl) return;
  setLive("wait", "live: reconnecting");
  setTimeout(() => { if (state.stream === ctrl) openStream(); }, 1000);
}

function onStreamBlock(block) {
  let event = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;                 // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data += value;
  }
  if (!data) return;
  const payload = JSON.parse(data);
  if (event === "ready") { state.since = payload.next; refresh(); }
  else if (event === "audit") { state.since = payload.seq; addEvent(payload); refresh(); }
  else if (event === "links") refresh();
}

function addEvent(e) {
  const list = $("events");
  const t = new Date(e.ts * 1000).toLocaleTimeString();
  const about = e.request && (e.request.id || (e.request.link && e.request.link.join("-")) || e.request.src);
  const li = el("li", { class: "fresh", "data-action": e.action }, null,
                `${t}  #${e.seq}  ${e.action}${about ? " " + about : ""}  ${e.status}  (${e.actor})`);
  list.prepend(li);
  setTimeout(() => li.classList.remove("fresh"), 3000);
  while (list.children.length > 50) list.lastChild.remove();
}

// ----- loading: topology, schedule, reservations (one refresh at a time; coalesced) ----------------------
function refresh() {
  if (state.refreshing) { state.again = true; return state.refreshing; }
  state.refreshing = (async () => {
    try {
      do {
        state.again = false;
        await load();
      } while (state.again);
    } catch (e) {
      say(e.message, true);
    } finally {
      state.refreshing = null;
    }
  })();
  return state.refreshing;
}

function listQuery() {
  const q = new URLSearchParams();
  const f = { tenant: $("f-tenant").value, src: $("f-src").value.trim(), dst: $("f-dst").value.trim(),
              status: $("f-status").value };
  if (!state.who.admin) delete f.tenant;
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function load() {
  if (!state.token) return;
  const [topo, schedule, list] = await Promise.all([
    api("GET", "/v1/topology"), api("GET", "/v1/schedule"), api("GET", `/v1/reservations${listQuery()}`)]);
  state.topo = topo;
  state.schedule = schedule;
  state.reservations = list.reservations;
  render();
}

// ----- what the schedule says about each directed link ------------------------------------------------
function linkUse() {
  const s = state.schedule, use = new Map();
  const nSlots = s.cycle_ns / s.slot_ns;
  for (const l of s.links) use.set(key(l.src, l.dst), { slots: 0, bps: 0, cap: l.capacity_bps, prop: l.propagation_ns,
                                                        owners: [] });
  for (const r of s.reservations) {
    for (const h of [...(r.hops || []), ...(r.protection_hops || [])]) {
      const u = use.get(key(h.src, h.dst));
      if (!u) continue;
      u.slots += h.slots.length;
      u.bps += r.bandwidth_bps;
      u.owners.push([r.id, h.slots]);
    }
  }
  for (const u of use.values()) {
    u.share = u.slots / nSlots;
    u.be = u.cap * Math.max(0, 1 - Math.min(1, u.bps / u.cap)) * BE_HEADROOM;   // the best-effort meter's rate
  }
  return use;
}

function shareColour(share) {
  if (!share) return "#b8c0cc";
  return `hsl(${Math.round(120 * (1 - Math.min(1, share)))}, 72%, 40%)`;
}

// ----- the map ------------------------------------------------------------------------------------------
function project(nodes) {
  const lat = nodes.map((n) => n.lat), lon = nodes.map((n) => n.lon);
  const [la0, la1, lo0, lo1] = [Math.min(...lat), Math.max(...lat), Math.min(...lon), Math.max(...lon)];
  const k = Math.cos(((la0 + la1) / 2) * Math.PI / 180);     // equirectangular, true at the middle latitude
  const w = Math.max((lo1 - lo0) * k, 1e-9), h = Math.max(la1 - la0, 1e-9);
  const W = 1000, pad = 40, scale = (W - 2 * pad) / w, H = Math.round(h * scale + 2 * pad);
  $("map").setAttribute("viewBox", `0 0 ${W} ${H}`);
  const pos = new Map();
  for (const n of nodes) pos.set(n.name, [pad + (n.lon - lo0) * k * scale, pad + (la1 - n.lat) * scale]);
  return pos;
}

function drawTopology() {
  const topo = state.topo;
  const sig = `${topo.name}:${topo.nodes.length}:${topo.links.length}`;
  if (state.drawnTopo === sig) return;
  state.drawnTopo = sig;
  state.proj = project(topo.nodes);
  for (const g of ["links", "overlays", "marks", "cities"]) $(g).replaceChildren();
  for (const l of topo.links) {
    const [a, b] = [state.proj.get(l.src), state.proj.get(l.dst)];
    const line = el("line", { class: "link", x1: a[0], y1: a[1], x2: b[0], y2: b[1], "data-src": l.src,
                              "data-dst": l.dst }, $("links"));
    el("title", {}, line);
    line.addEventListener("click", () => selectLink(l.src, l.dst));
  }
  for (const n of topo.nodes) {
    const [x, y] = state.proj.get(n.name);
    const c = el("circle", { class: "city", cx: x, cy: y, r: 4.5, "data-name": n.name }, $("cities"));
    el("title", {}, c, `${n.name} (${n.lat}, ${n.lon})`);
    el("text", { class: "city", x: x + 6, y: y - 5 }, $("cities"), n.name);
  }
  const names = topo.nodes.map((n) => n.name).sort();
  for (const id of ["wf-src", "wf-dst"]) {
    $(id).replaceChildren(...names.map((n) => el("option", { value: n }, null, n)));
  }
  $("wf-dst").value = names.includes("Shanghai") ? "Shanghai" : names[names.length - 1];
  $("wf-src").value = names.includes("Beijing") ? "Beijing" : names[0];
  $("nodes").replaceChildren(...names.map((n) => el("option", { value: n })));
}

function colourLinks(use) {
  const topo = state.topo, marks = $("marks");
  const missing = new Set((topo.link_check.missing || []).map(([u, v]) => [u, v].sort().join("|")));
  marks.replaceChildren();
  for (const line of $("links").children) {
    const [u, v] = [line.dataset.src, line.dataset.dst];
    const ab = use.get(key(u, v)) || { share: 0, bps: 0 }, ba = use.get(key(v, u)) || { share: 0, bps: 0 };
    const share = Math.max(ab.share, ba.share);
    const link = topo.links.find((l) => l.src === u && l.dst === v);
    const down = link && link.state === "down";
    const lldp = missing.has([u, v].sort().join("|"));
    line.setAttribute("stroke", down ? "#111827" : shareColour(share));
    line.dataset.share = share.toFixed(6);
    line.dataset.state = down ? "down" : "up";
    line.classList.toggle("down", !!down);
    line.classList.toggle("lldp-missing", lldp);
    line.classList.toggle("selected", !!state.selectedLink &&
      [u, v].sort().join("|") === [...state.selectedLink].sort().join("|"));
    line.firstChild.textContent = `${u} - ${v}${down ? " (DOWN)" : ""}${lldp ? " (not seen by LLDP)" : ""}\n`
      + `${u}->${v}: ${pct(ab.share)} of slots, ${fmtBps(ab.bps)}\n${v}->${u}: ${pct(ba.share)} of slots, ${fmtBps(ba.bps)}`;
    const mx = (+line.getAttribute("x1") + +line.getAttribute("x2")) / 2;
    const my = (+line.getAttribute("y1") + +line.getAttribute("y2")) / 2;
    if (down) el("text", { class: "mark-down", x: mx - 7, y: my + 8, "data-link": key(u, v) }, marks, "✕");
    if (lldp) {
      const dx = down ? 14 : 0;
      el("circle", { class: "mark-lldp", cx: mx + dx, cy: my, r: 7, "data-link": key(u, v) }, marks);
      el("text", { class: "mark-lldp", x: mx + dx - 3, y: my + 3.5 }, marks, "?");
    }
  }
}

function drawPath(nodes, cls) {
  if (!nodes || nodes.length < 2) return;
  const points = nodes.map((n) => state.proj.get(n)).filter(Boolean).map((p) => p.join(",")).join(" ");
  el("polyline", { class: cls, points }, $("overlays"));
}

function drawOverlays() {
  $("overlays").replaceChildren();
  const ends = new Set();
  const r = selectedReservation();
  if (r) {
    drawPath(r.path, "path-primary");
    drawPath(r.protection_path, "path-protection");
    ends.add(r.src).add(r.dst);
  }
  if (state.whatIf && state.whatIf.admissible) {
    drawPath(state.whatIf.path, "path-whatif");
    drawPath(state.whatIf.protection_path, "path-whatif");
  }
  for (const c of $("cities").querySelectorAll("circle.city")) c.classList.toggle("end", ends.has(c.dataset.name));
}

// ----- timelines over the cycle (a reservation's slots; a link's gate control list) ------------------------
function runs(slots) {
  const out = [];
  for (const s of [...slots].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === s) last[1] += 1;
    else out.push([s, 1]);
  }
  return out;
}

// one colour per reservation, far apart for neighbours in the schedule (golden-angle hues)
function colourOf(id) {
  const i = state.schedule.reservations.findIndex((r) => r.id === id);
  return `hsl(${Math.round(((i < 0 ? 0 : i) * 137.508 + 220) % 360)}, 62%, 46%)`;
}

// rows: [{label, owners: [[id, slots]]}] -> one SVG: a bar per row over [0, cycle)
function timeline(rows, cls, rowH = 18) {
  const s = state.schedule, nSlots = s.cycle_ns / s.slot_ns;
  const L = 150, W = 640, top = 4;
  const svg = el("svg", { class: `timeline ${cls}`, viewBox: `0 0 ${L + W + 10} ${top + rows.length * rowH + 16}` });
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    el("text", { class: "row", x: 0, y: y + rowH / 2 + 2 }, svg, row.label);
    const g = el("g", { class: "lane", "data-label": row.label }, svg);
    el("rect", { class: "be", x: L, y, width: W, height: rowH - 4 }, g, null);
    for (const [id, slots] of row.owners) {
      for (const [first, count] of runs(slots)) {
        const rect = el("rect", { class: "window", x: L + (first / nSlots) * W, y,
                                  width: Math.max(1, (count / nSlots) * W), height: rowH - 4, fill: colourOf(id),
                                  "data-reservation": id, "data-first": first, "data-count": count }, g);
        el("title", {}, rect, `${id}: slots ${first}-${first + count - 1}, `
           + `${fmtNs(first * s.slot_ns)} + ${fmtNs(count * s.slot_ns)} (gate of class 7 open)`);
      }
    }
  });
  const y = top + rows.length * rowH + 10;
  el("text", { x: L, y }, svg, "0");
  el("text", { x: L + W / 2 - 30, y }, svg, `cycle ${fmtNs(s.cycle_ns)}, slot ${fmtNs(s.slot_ns)}`);
  el("text", { x: L + W - 40, y }, svg, fmtNs(s.cycle_ns));
  return svg;
}

// ----- panels -------------------------------------------------------------------------------------------
function selectedReservation() {
  return state.selected ? state.reservations.find((r) => r.id === state.selected) || null : null;
}

function propagationNs(path) {
  const use = state.linkUse;
  let total = 0;
  for (let i = 0; i + 1 < path.length; i++) {
    const u = use.get(key(path[i], path[i + 1]));
    total += u ? u.prop : 0;
  }
  return total;
}

function dl(pairs) {
  const d = el("dl");
  for (const [k, v] of pairs) { el("dt", {}, d, k); el("dd", {}, d, v); }
  return d;
}

function renderReservationPanel() {
  const panel = $("res-panel"), r = selectedReservation();
  panel.replaceChildren(el("h2", {}, null, r ? `Reservation ${r.id}` : "Reservation"));
  if (!r) { el("p", { class: "hint" }, panel, "Click a row of the table."); return; }
  const prop = propagationNs(r.path);
  panel.appendChild(dl([
    ["tenant", String(r.tenant)], ["status", r.status || "active"],
    ["path", `${r.path.join(" → ")} (${r.path.length - 1} hops)`],
    ...(r.protection_path ? [["protection", r.protection_path.join(" → ")]] : []),
    ["rate", `${fmtBps(r.bandwidth_bps)} (${r.frame_bytes} B every ${fmtNs(r.period_ns)})`],
    ["latency", `bound ${fmtNs(r.latency_bound_ns)} · propagation ${fmtNs(prop)} · max ${fmtNs(r.max_latency_ns)}`],
    ["jitter bound", fmtNs(r.jitter_bound_ns)],
    ...(r.status_reason ? [["reason", r.status_reason]] : []),
  ]));
  panel.lastChild.id = "res-facts";
  el("div", { class: "hint" }, panel, "its slots on each hop over the cycle (the gate view):");
  const rows = (r.hops || []).map((h) => ({ label: `${h.src}→${h.dst}`, owners: [[r.id, h.slots || []]] }));
  for (const h of r.protection_hops || []) rows.push({ label: `⤷ ${h.src}→${h.dst}`, owners: [[r.id, h.slots || []]] });
  panel.appendChild(timeline(rows, "gate-view"));
  const release = el("button", { type: "button", id: "release" }, panel, `Release ${r.id}`);
  release.addEventListener("click", () => releaseReservation(r.id));
}

function selectLink(u, v) {
  state.selectedLink = [u, v];
  render();
}

function renderLinkPanel(use) {
  const panel = $("link-panel");
  panel.replaceChildren(el("h2", {}, null, "Link"));
  if (!state.selectedLink) { el("p", { class: "hint" }, panel, "Click a link on the map."); return; }
  const [u, v] = state.selectedLink;
  const link = state.topo.links.find((l) => (l.src === u && l.dst === v) || (l.src === v && l.dst === u));
  panel.firstChild.textContent = `Link ${u} – ${v}`;
  const lldpMissing = (state.topo.link_check.missing || []).some(([a, b]) => [a, b].sort().join() === [u, v].sort().join());
  panel.appendChild(dl([
    ["state", link && link.state === "down" ? "DOWN" : "up"],
    ["LLDP", !state.topo.link_check.checked ? "not checked yet" : lldpMissing ? "missing" : "seen"],
    ["length", link ? `${link.km} km, ${fmtNs(link.propagation_ns)}` : "-"],
  ]));
  const rows = [];
  for (const [a, b] of [[u, v], [v, u]]) {
    const d = use.get(key(a, b));
    if (!d) continue;
    const facts = dl([["capacity", fmtBps(d.cap)], ["reserved", `${pct(d.share)} of slots, ${fmtBps(d.bps)}`],
                      ["best-effort meter", fmtBps(d.be)]]);
    facts.dataset.direction = key(a, b);
    el("div", { class: "hint" }, panel, `${a} → ${b}`);
    panel.appendChild(facts);
    rows.push({ label: `${a}→${b}`, owners: d.owners });
  }
  el("div", { class: "hint" }, panel, "gate control list over the cycle (grey: best-effort gates open):");
  panel.appendChild(timeline(rows, "gcl", 30));
}

function renderTable() {
  const body = $("reservations").tBodies[0];
  body.replaceChildren();
  for (const r of state.reservations) {
    const status = r.status || "active";
    const tr = el("tr", { "data-id": r.id, class: r.id === state.selected ? "selected" : null }, body);
    for (const v of [r.id, r.tenant, r.src, r.dst, fmtBps(r.bandwidth_bps), fmtNs(r.latency_bound_ns),
                     fmtNs(r.max_latency_ns), r.path.length - 1]) el("td", {}, tr, String(v));
    el("td", { class: `status-${status}` }, tr, status);
    const cell = el("td", {}, tr);
    const b = el("button", { type: "button", class: "release" }, cell, "release");
    b.addEventListener("click", (ev) => { ev.stopPropagation(); releaseReservation(r.id); });
    tr.addEventListener("click", () => { state.selected = r.id; render(); });
  }
  $("res-count").textContent = `(${state.reservations.length})`;
}

function render() {
  if (!state.topo || !state.schedule) return;
  drawTopology();
  const use = linkUse();
  state.linkUse = use;
  colourLinks(use);
  drawOverlays();
  renderTable();
  renderReservationPanel();
  renderLinkPanel(use);
}

// ----- actions: what-if, reserve, release -------------------------------------------------------------------
function requestBody() {
  const body = { src: $("wf-src").value, dst: $("wf-dst").value,
                 bandwidth_bps: Math.round(parseFloat($("wf-bw").value) * 1e9),
                 max_latency_ns: Math.round(parseFloat($("wf-lat").value) * 1e6) };
  if (state.who.admin && $("wf-tenant").value) body.tenant = parseInt($("wf-tenant").value, 10);
  if ($("wf-udp").value) body.match = { udp_dst: parseInt($("wf-udp").value, 10) };
  if ($("wf-protect").checked) body.protection = "disjoint";
  return body;
}

async function whatIf(ev) {
  ev.preventDefault();
  const out = $("wf-result");
  try {
    const a = await api("POST", "/v1/paths", requestBody());
    state.whatIf = a;
    out.className = a.admissible ? "ok" : "bad";
    out.textContent = a.admissible
      ? `admissible: ${a.path.join(" → ")}, latency bound ${fmtNs(a.latency_bound_ns)} `
        + `(propagation ${fmtNs(propagationNs(a.path))})`
      : `not admissible: ${a.reason}: ${a.detail}`;
  } catch (e) {
    state.whatIf = null;
    out.className = "bad";
    out.textContent = e.message;
  }
  render();
}

async function reserve() {
  const out = $("wf-result");
  try {
    const r = await api("POST", "/v1/reservations", requestBody());
    state.whatIf = null;
    state.selected = r.id;
    out.className = "ok";
    out.textContent = `reservation ${r.id} admitted: ${r.path.join(" → ")}, bound ${fmtNs(r.latency_bound_ns)}`;
  } catch (e) {
    out.className = "bad";
    out.textContent = e.body && e.body.reason ? `refused (${e.body.reason}): ${e.message}` : e.message;
  }
  await refresh();
}

async function releaseReservation(id) {
  try {
    await api("DELETE", `/v1/reservations/${encodeURIComponent(id)}`);
    say(`released ${id}`);
    if (state.selected === id) state.selected = null;
  } catch (e) {
    say(`release ${id}: ${e.message}`, true);
  }
  await refresh();
}

// ----- start -------------------------------------------------------------------------------------------------
$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  $("token").value = "";
  if (t) signIn(t);
});
$("whatif").addEventListener("submit", whatIf);
$("wf-reserve").addEventListener("click", reserve);
for (const id of ["f-tenant", "f-src", "f-dst", "f-status"]) $(id).addEventListener("change", () => refresh());

const initial = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
if (initial) signIn(initial);
else say("sign in with a token (or open /ui#token=TOKEN)");
