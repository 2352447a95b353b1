// Headwater dashboards page: one live stream per open dashboard, panels drawn by hand
// (numbers as text, series on a canvas, rankings and the funnel as bars). No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const count = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
let source = null;
let lastSnapshot = null;

// When the API asks for credentials (401), the page asks for an API key once and keeps it for
// this tab only (sessionStorage). EventSource cannot send a header, so with a key the live
// stream is read with fetch instead.
const KEY = "headwater-api-key";
const auth = () => {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function get(path) {
  let response = await fetch(path, { headers: auth() });
  if (response.status === 401) {
    const key = window.prompt("API key with the dashboards scope (headwater api-keys create)");
    if (key) {
      sessionStorage.setItem(KEY, key.trim());
      response = await fetch(path, { headers: auth() });
    }
  }
  return response;
}

// Server-Sent Events over fetch: `update` events rendered; after a drop, a reconnect `retry`
// ms later sending the last event id (an unchanged dashboard is then not sent again).
function follow(url) {
  const controller = new AbortController();
  let lastId = null;
  let retry = 1000;
  const handle = (block) => {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      const [field, ...rest] = line.split(":");
      const value = rest.join(":").replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
    }
    if (event === "update" && data.length) render(JSON.parse(data.join("\n")));
  };
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const headers = { ...auth(), ...(lastId ? { "Last-Event-ID": lastId } : {}) };
        const response = await fetch(url, { headers, signal: controller.signal });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        setLive(true, "live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let match;
          while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
            handle(buffer.slice(0, match.index));
            buffer = buffer.slice(match.index + match[0].length);
          }
        }
      } catch (err) {
        if (controller.signal.aborted) return;
      }
      setLive(false, "reconnecting");
      await sleep(retry);
    }
  })();
  return { close: () => controller.abort() };
}

function fmt(value, unit) {
  if (value === null || value === undefined) return "—";
  return unit === "money" ? money.format(value) : count.format(value);
}

function timeOf(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawSeries(canvas, series, unit) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || 150;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  const values = series.map((p) => (p[1] === null ? 0 : p[1]));
  const max = Math.max(1, ...values);
  const left = 4, right = w - 4, top = 16, bottom = h - 18;
  g.strokeStyle = "#243140"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(left, bottom + 0.5); g.lineTo(right, bottom + 0.5); g.stroke();
  g.fillStyle = "#8b9bab"; g.font = "11px system-ui, sans-serif";
  g.fillText("max " + fmt(max, unit), left, 11);
  if (series.length) {
    g.fillText(timeOf(series[0][0]).slice(0, 5), left, h - 4);
    const endLabel = timeOf(series[series.length - 1][0]).slice(0, 5);
    g.fillText(endLabel, right - g.measureText(endLabel).width, h - 4);
  }
  if (values.length < 2) return;
  const x = (i) => left + (i * (right - left)) / (values.length - 1);
  const y = (v) => bottom - (v / max) * (bottom - top);
  g.beginPath(); g.moveTo(x(0), bottom);
  values.forEach((v, i) => g.lineTo(x(i), y(v)));
  g.lineTo(x(values.length - 1), bottom); g.closePath();
  g.fillStyle = "rgba(76,194,255,0.15)"; g.fill();
  g.beginPath();
  values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.strokeStyle = "#4cc2ff"; g.lineWidth = 2; g.stroke();
}

function bars(items, unit) {
  const list = el("ul", { class: "bars" });
  const max = Math.max(1e-9, ...items.map((i) => i.value));
  for (const item of items) {
    const li = el("li");
    li.append(el("span", {}, item.label), el("span", { class: "num" }, item.text ?? fmt(item.value, unit)));
    const bar = el("span", { class: "bar" });
    const fill = el("i");
    fill.style.width = `${Math.max(1, (100 * item.value) / max)}%`;
    bar.append(fill); li.append(bar); list.append(li);
  }
  return list;
}

function renderPanel(panel) {
  const box = el("article", { class: "panel", "data-panel": panel.id });
  box.append(el("h2", {}, panel.title));
  if (panel.type === "stat") {
    box.append(el("div", { class: "value", "data-value": panel.id }, fmt(panel.value, panel.unit)));
  } else if (panel.type === "series") {
    box.classList.add("wide");
    box.append(el("div", { class: "value", "data-value": panel.id }, fmt(panel.value, panel.unit)));
    const canvas = el("canvas");
    box.append(canvas);
    requestAnimationFrame(() => drawSeries(canvas, panel.series || [], panel.unit));
  } else if (panel.type === "top") {
    const items = panel.items || [];
    box.append(items.length ? bars(items, panel.unit) : el("p", { class: "empty" }, "No data in this range yet"));
  } else if (panel.type === "funnel") {
    const stages = (panel.stages || []).map((s) => ({
      label: s.label, value: s.value,
      text: `${count.format(s.value)}${s.from_first !== null && s !== panel.stages[0] ? `  (${(100 * s.from_first).toFixed(1)}%)` : ""}`,
    }));
    box.append(stages.length ? bars(stages, "count") : el("p", { class: "empty" }, "No data yet"));
  }
  return box;
}

function render(snapshot) {
  lastSnapshot = snapshot;
  $("description").textContent = snapshot.description || "";
  $("last-event").textContent = snapshot.last_event_ms ? `${timeOf(snapshot.last_event_ms)}` : "none yet";
  $("last-event").dataset.ms = snapshot.last_event_ms || "";
  $("counts").textContent = `${count.format(snapshot.events)} events · ${count.format(snapshot.dropped_late)} late dropped`;
  const panels = $("panels");
  panels.replaceChildren(...snapshot.panels.map(renderPanel));
}

function setLive(on, text) {
  $("live").className = `dot ${on ? "on" : "off"}`;
  $("live-text").textContent = text;
}

function open(dashboard) {
  if (source) source.close();
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.name === dashboard.name));
  if (sessionStorage.getItem(KEY)) {
    source = follow(dashboard.links.events);
    return;
  }
  // EventSource reconnects by itself (the server sends `retry`); each (re)connect starts
  // with a full snapshot unless its last event id is still current, so nothing is missed.
  source = new EventSource(dashboard.links.events);
  source.addEventListener("update", (e) => { setLive(true, "live"); render(JSON.parse(e.data)); });
  source.onopen = () => setLive(true, "live");
  source.onerror = () => setLive(false, "reconnecting");
}

async function main() {
  // The API's answers are {data, meta, links}; failures {errors: [{detail, ...}]}.
  const response = await get("/api/v1/dashboards");
  const body = await response.json();
  if (!response.ok) throw new Error(body.errors.map((e) => e.detail).join("; "));
  const dashboards = body.data;
  const tabs = $("tabs");
  for (const d of dashboards) {
    const a = el("a", { href: `#${d.name}`, "data-name": d.name }, d.title);
    tabs.append(a);
  }
  const pick = () => {
    const wanted = location.hash.slice(1);
    open(dashboards.find((d) => d.name === wanted) || dashboards[0]);
  };
  window.addEventListener("hashchange", pick);
  window.addEventListener("resize", () => lastSnapshot && render(lastSnapshot));
  pick();
}

main().catch((err) => setLive(false, `error: ${err}`));
