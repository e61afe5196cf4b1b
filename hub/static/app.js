// The duty officer's page: polls the hub's own GeoJSON and draws it as SVG (no tiles, no CDN).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 1000, HEIGHT = 800, MARGIN = 40;
const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
let selected = null;
let lastFires = [], lastTowers = [], lastText = "";
// The session's CSRF token: sent with every write, so another site's form cannot act for us.
let session = null;

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Equirectangular around the layers' extent, x scaled by cos(latitude): metric-looking at county scale.
function projection(points) {
  let minLon = Infinity, maxLon = -Infinity, minLat = Infinity, maxLat = -Infinity;
  for (const [lon, lat] of points) {
    minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
    minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
  }
  if (!isFinite(minLon)) { minLon = 121.8; maxLon = 122.2; minLat = 41.0; maxLat = 41.3; }
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const spanX = Math.max((maxLon - minLon) * k, 0.01), spanY = Math.max(maxLat - minLat, 0.01);
  const scale = Math.min((WIDTH - 2 * MARGIN) / spanX, (HEIGHT - 2 * MARGIN) / spanY);
  const cx = (minLon + maxLon) / 2, cy = (minLat + maxLat) / 2;
  const project = ([lon, lat]) => [WIDTH / 2 + (lon - cx) * k * scale, HEIGHT / 2 - (lat - cy) * scale];
  project.metresPerUnit = 111320 / scale;
  return project;
}

function destination(lat, lon, bearingDeg, distanceM) {
  // Spherical step; only for drawing rays and circles, never for the fire's position.
  const R = 6371008.8, d = distanceM / R, b = bearingDeg * Math.PI / 180;
  const p1 = lat * Math.PI / 180, l1 = lon * Math.PI / 180;
  const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
  const l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
  return [l2 * 180 / Math.PI, p2 * 180 / Math.PI];
}

function pathOf(ring, project) {
  return ring.map((p, i) => (i ? "L" : "M") + project(p).map((v) => v.toFixed(1)).join(",")).join(" ") + " Z";
}

function drawMap(fires, towers) {
  const points = [];
  for (const t of towers) if (t.geometry) points.push(t.geometry.coordinates);
  for (const f of fires) for (const p of f.properties.area.coordinates[0]) points.push(p);
  const project = projection(points);
  const layers = {};
  for (const name of ["coverage", "areas", "rays", "towers", "fires", "scale"]) {
    layers[name] = document.getElementById("layer-" + name);
    layers[name].replaceChildren();
  }
  for (const t of towers) {
    if (!t.geometry) continue;
    const [lon, lat] = t.geometry.coordinates;
    const p = t.properties;
    if (p.detection_range_m) {
      const ring = [];
      for (let b = 0; b <= 360; b += 10) ring.push(destination(lat, lon, b, p.detection_range_m));
      layers.coverage.append(el("path", { d: pathOf(ring, project), class: "coverage" }));
    }
    const [x, y] = project([lon, lat]);
    const mark = el("circle", { cx: x, cy: y, r: 7, class: "tower-" + p.state, "data-tower-id": p.tower_id });
    mark.append(el("title", {}, `${p.tower_id}: ${p.state}`));
    layers.towers.append(mark);
    layers.towers.append(el("text", { x: x + 9, y: y - 9, class: "label" }, p.tower_id));
  }
  for (const f of fires) {
    const p = f.properties;
    const wedge = p.geometry === "bearing_only" || p.geometry === "poor";
    layers.areas.append(el("path", { d: pathOf(p.area.coordinates[0], project), class: "area" + (wedge ? " wedge" : ""), "data-fire-id": p.fire_id }));
    for (const a of p.alarms) {
      const far = a.range_max_m || (f.geometry ? 1.2 * distanceTo(a, f.geometry.coordinates) : 30000);
      const [x1, y1] = project([a.tower_lon, a.tower_lat]);
      const [x2, y2] = project(destination(a.tower_lat, a.tower_lon, a.bearing_deg, far));
      layers.rays.append(el("line", { x1, y1, x2, y2, class: "ray", "data-fire-id": p.fire_id }));
    }
    if (f.geometry) {
      const [x, y] = project(f.geometry.coordinates);
      const mark = el("path", {
        d: `M${x},${y - 9} L${x + 9},${y} L${x},${y + 9} L${x - 9},${y} Z`,
        class: "fire-mark" + (selected === p.fire_id ? " selected" : ""),
        "data-fire-id": p.fire_id,
      });
      mark.append(el("title", {}, `fire ${p.fire_id}`));
      mark.addEventListener("click", () => select(p.fire_id));
      layers.fires.append(mark);
    }
  }
  const barM = niceBar(project.metresPerUnit * 150);
  const barPx = barM / project.metresPerUnit;
  layers.scale.append(el("line", { x1: MARGIN, y1: HEIGHT - 20, x2: MARGIN + barPx, y2: HEIGHT - 20, class: "scale" }));
  layers.scale.append(el("text", { x: MARGIN, y: HEIGHT - 26, class: "label" }, barM >= 1000 ? `${barM / 1000} km` : `${barM} m`));
  layers.scale.append(el("text", { x: WIDTH - MARGIN, y: MARGIN, class: "label" }, "N ↑"));
}

function distanceTo(alarm, [lon, lat]) {
  const k = Math.cos(lat * Math.PI / 180);
  return Math.hypot((lon - alarm.tower_lon) * k, lat - alarm.tower_lat) * 111320;
}

function niceBar(metres) {
  const p = Math.pow(10, Math.floor(Math.log10(metres)));
  for (const m of [5, 2, 1]) if (m * p <= metres) return m * p;
  return p;
}

function localTime(iso) {
  const d = new Date(iso);
  return { local: d.toLocaleString(), utc: d.toISOString().replace(".000Z", "Z") };
}

function drawList(fires) {
  const list = document.getElementById("fires");
  // The list is rebuilt on each change; keep the keyboard where the officer left it.
  const active = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset : {};
  const focusedId = active.fireId || null, focusedAck = active.ack || null;
  list.replaceChildren();
  document.getElementById("fire-count").textContent = `(${fires.length})`;
  for (const f of fires) {
    const p = f.properties;
    const item = html("li", { tabindex: "0", "data-fire-id": p.fire_id });
    if (p.acknowledged) item.classList.add("acknowledged");
    if (p.test) item.classList.add("test");
    if (selected === p.fire_id) item.classList.add("selected");
    const t = localTime(p.confirmed_at);
    const where = f.geometry ? `${f.geometry.coordinates[1].toFixed(5)}, ${f.geometry.coordinates[0].toFixed(5)}` : "bearing only (wedge)";
    item.append(html("strong", {}, `${p.test ? "TEST " : ""}Fire ${p.fire_id} · ${p.state}${p.acknowledged ? " · acknowledged" : ""}`));
    item.append(html("div", { class: "meta" }, `${t.local} (UTC ${t.utc})`));
    item.append(html("div", { class: "meta" }, `towers ${p.towers.join(", ")} · ${p.range_source} · confidence ${(p.confidence * 100).toFixed(0)} %`));
    const size = p.uncertainty ? ` ± ${Math.round(p.uncertainty.semi_major_m)} m (95 %)` : "";
    item.append(html("div", { class: "meta" }, where + size + (p.note ? ` · ${p.note}` : "")));
    if (p.snapshot) item.append(html("img", { src: p.snapshot, alt: `snapshot of fire ${p.fire_id}`, loading: "lazy" }));
    if (!p.acknowledged && p.state === "active" && session && session.role === "officer") {
      const button = html("button", { type: "button", "data-ack": p.fire_id }, "Acknowledge");
      button.addEventListener("click", (event) => { event.stopPropagation(); acknowledge(p.fire_id); });
      item.append(button);
      if (focusedAck === p.fire_id) setTimeout(() => button.focus(), 0);
    }
    const cap = html("a", { href: p.cap }, " CAP");
    item.append(cap);
    item.addEventListener("click", () => select(p.fire_id));
    item.addEventListener("keydown", (event) => {
      if (event.target !== item) return;
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(p.fire_id); }
      if (event.key === "ArrowDown" && item.nextElementSibling) { event.preventDefault(); item.nextElementSibling.focus(); }
      if (event.key === "ArrowUp" && item.previousElementSibling) { event.preventDefault(); item.previousElementSibling.focus(); }
    });
    list.append(item);
    if (focusedId === p.fire_id) item.focus();
  }
}

function drawTowers(towers) {
  const list = document.getElementById("towers");
  list.replaceChildren();
  for (const t of towers) {
    const p = t.properties;
    const bad = p.malformed ? ` · ${p.malformed} refused message(s): ${p.last_error || ""}` : "";
    list.append(html("li", { "data-tower-id": p.tower_id }, `${p.tower_id}: ${p.state}${p.reasons.length ? " (" + p.reasons.join(", ") + ")" : ""}${bad}`));
  }
}

function select(fireId) {
  selected = selected === fireId ? null : fireId;
  drawMap(lastFires, lastTowers);
  drawList(lastFires);
}

async function acknowledge(fireId) {
  if (!session) return;
  await fetch(`/api/fires/${encodeURIComponent(fireId)}/acknowledge`, { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf }, body: "{}" });
  await refresh();
}

function showSession(s) {
  session = s;
  document.getElementById("login").hidden = Boolean(s);
  document.getElementById("logout").hidden = !s;
  document.getElementById("who").textContent = s ? `${s.name} (${s.role})` : "";
  lastText = "";
}

async function loadSession() {
  const r = await fetch("/api/session");
  showSession(r.ok ? await r.json() : null);
}

async function login(event) {
  event.preventDefault();
  const error = document.getElementById("login-error");
  const r = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: document.getElementById("login-name").value, password: document.getElementById("login-password").value }),
  });
  document.getElementById("login-password").value = "";
  if (!r.ok) {
    error.textContent = r.status === 429 ? "too many failed logins: wait and try again" : "wrong name or password";
    return;
  }
  error.textContent = "";
  showSession(await r.json());
  await refresh();
}

async function logout() {
  if (session) await fetch("/api/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf } });
  showSession(null);
}

async function refresh() {
  const link = document.getElementById("link");
  try {
    const asked = session;
    const [firesR, towersR] = await Promise.all([fetch("/api/fires"), fetch("/api/towers")]);
    if (firesR.status === 401 || towersR.status === 401) {
      // A poll sent before a login may be refused after it: only drop the session it was sent with.
      if (session && session === asked) showSession(null);
      else if (session) return;
      else document.getElementById("login").hidden = false;
      link.textContent = "log in to see the county";
      return;
    }
    const [fires, towers] = await Promise.all([firesR.json(), towersR.json()]);
    const text = JSON.stringify([fires, towers]);
    if (text !== lastText) {
      lastText = text;
      lastFires = fires.features; lastTowers = towers.features;
      drawMap(lastFires, lastTowers);
      drawList(lastFires);
      drawTowers(lastTowers);
    }
    link.textContent = `updated ${new Date().toLocaleTimeString()}`;
    link.classList.remove("down");
  } catch (err) {
    link.textContent = "hub unreachable: showing the last picture";
    link.classList.add("down");
  }
}

function tick() {
  const now = new Date();
  document.getElementById("clock").textContent = `${now.toLocaleString()} · UTC ${now.toISOString().slice(11, 19)}`;
}

document.getElementById("login").addEventListener("submit", login);
document.getElementById("logout").addEventListener("click", logout);
tick();
setInterval(tick, 1000);
loadSession().then(refresh);
setInterval(refresh, refreshMs);
