// Sentinel dashboard: one snapshot from /api/state, then pushed updates from /api/events (SSE).
// No build step and no inline script: the page's Content-Security-Policy allows only 'self'.
"use strict";

const SPAN_S = 600;          // the timeline shows the last 10 minutes
const cards = new Map();     // source -> {el, plot, xs, ys, threshold}
const seenAlerts = new Set();
let info = {};

// A perceptual dark-to-bright colour map (anchors of magma), 256 entries.
const LUT = (() => {
  const a = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255 * (a.length - 1), k = Math.min(Math.floor(x), a.length - 2), f = x - k;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = a[k][c] + (a[k + 1][c] - a[k][c]) * f;
  }
  return lut;
})();

function fmt(v, d = 2) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }

function card(name) {
  if (cards.has(name)) return cards.get(name);
  const el = document.getElementById("source-card").content.firstElementChild.cloneNode(true);
  el.dataset.source = name;
  el.querySelector(".name").textContent = name;
  document.getElementById("sources").appendChild(el);
  const c = {el, xs: [], ys: [], threshold: null, plot: null, visible: true, spec: null};
  const opts = {
    width: Math.max(300, el.clientWidth - 30), height: 170,
    // asinh y axis: linear near 0, logarithmic beyond, so a threshold of 3.6 still shows under peaks of 200+.
    scales: {x: {time: true}, y: {distr: 4, asinh: 1}},
    axes: [{}, {label: "score", size: 50}],
    series: [{}, {label: "score", stroke: "#1f2937", width: 1.5, points: {show: false}},
             {label: "threshold", stroke: "#c62828", dash: [6, 4], width: 1.5, points: {show: false}}],
    legend: {show: true},
  };
  c.plot = new uPlot(opts, [[], [], []], el.querySelector(".timeline"));
  cards.set(name, c);
  // Cards scrolled out of view keep their data but are not drawn: with many sources, drawing
  // what nobody sees is most of the page's work.
  new IntersectionObserver(entries => {
    c.visible = entries[entries.length - 1].isIntersecting;
    if (c.visible) draw(c);
  }).observe(el);
  return c;
}

function drawSpectrogram(c, spec) {
  if (!spec || !spec.cols) return;
  const canvas = c.el.querySelector(".spectrogram");
  canvas.width = spec.cols; canvas.height = spec.rows;
  const bytes = Uint8Array.from(atob(spec.b64), ch => ch.charCodeAt(0));
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(spec.cols, spec.rows);
  for (let r = 0; r < spec.rows; r++) {
    for (let col = 0; col < spec.cols; col++) {
      const v = bytes[r * spec.cols + col], o = ((spec.rows - 1 - r) * spec.cols + col) * 4; // low bins at the bottom
      img.data[o] = LUT[v * 3]; img.data[o + 1] = LUT[v * 3 + 1]; img.data[o + 2] = LUT[v * 3 + 2]; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

function updateSource(name, s, spec, now) {
  const c = card(name);
  if (s.threshold !== null && s.threshold !== undefined) c.threshold = s.threshold;
  for (const [t, y] of s.points) { c.xs.push(t); c.ys.push(y); }
  let cut = 0;
  while (cut < c.xs.length && c.xs[cut] < now - SPAN_S) cut++;
  if (cut) { c.xs.splice(0, cut); c.ys.splice(0, cut); }
  c.spec = spec || c.spec;
  if (c.visible) draw(c);
  const st = s.status || {};
  const state = c.el.querySelector(".state");
  const learning = st.state === "learning" || st.state === "training";
  const up = st.connected !== false && (c.xs.length > 0 || learning);
  state.textContent = !up ? "disconnected" : learning
    ? `${st.state} ${Math.round(100 * (st.learn_progress || 0))}%` : (st.state === "stopped" ? "stopped" : "connected");
  state.className = "chip state " + (up ? (learning ? "learning" : "up") : "down");
  c.el.querySelector(".anomaly").hidden = !st.anomaly;
  c.el.dataset.points = String(c.xs.length);
  c.el.querySelector(".stats").textContent =
    `windows scored ${s.windows} · last score ${fmt(c.ys[c.ys.length - 1])} · threshold ${fmt(c.threshold)}` +
    ` · dropped audio ${st.dropped_samples || 0} samples · lag ${fmt(s.lag_s)} s` +
    (st.bundle_id ? ` · bundle ${st.bundle_id}` : "") + (st.armed === false ? " · DISARMED" : "");
}

function draw(c) {
  c.plot.setData([c.xs, c.ys, c.xs.map(() => c.threshold)]);
  drawSpectrogram(c, c.spec);
}

function addAlert(a, fresh) {
  const tbody = document.querySelector("#alerts tbody");
  let row = tbody.querySelector(`tr[data-event-id="${a.event_id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.eventId = a.event_id;
    for (const text of [a.start.replace("T", " ").slice(5, 19), a.source, ""]) {
      const td = document.createElement("td"); td.textContent = text; row.appendChild(td);
    }
    const clip = document.createElement("td"), button = document.createElement("button");
    button.textContent = "view"; button.disabled = true; button.className = "view";
    clip.appendChild(button); row.appendChild(clip);
    if (info.csrf) {  // the daemon takes feedback: "that was normal", and its undo
      const fb = document.createElement("button");
      fb.className = "feedback"; clip.appendChild(fb);
    }
    if (fresh) row.classList.add("new");
    tbody.prepend(row);
    seenAlerts.add(a.event_id);
    document.getElementById("no-alerts").hidden = true;
  }
  // The score that opened the event until it closes; then its real peak (the alert_end's).
  row.children[2].textContent = a.peak_score !== undefined ? fmt(a.peak_score) : `${fmt(a.opening_score)}…`;
  row.children[2].title = a.peak_score !== undefined ? `peak over ${fmt(a.duration_s)} s` : "opening score; still going on";
  row.querySelector("button.view").onclick = () => showFigure(a);
  const fb = row.querySelector("button.feedback");
  if (fb) {
    const normal = a.feedback === "normal";
    fb.textContent = normal ? "undo 'normal'" : "that was normal";
    fb.title = normal ? "it was accepted as normal; take that back" : "teach the daemon this sound is normal";
    fb.disabled = false;
    fb.onclick = () => sendFeedback(a.event_id, normal ? "undo" : "normal", fb);
  }
  if (location.hash === `#alert=${a.event_id}`) {  // a notification's link: open that alert
    row.scrollIntoView(); showFigure(a); row.classList.add("new");
  }
  if (a.clip_name && !row.querySelector("audio")) {
    const audio = document.createElement("audio");
    audio.controls = true; audio.preload = "metadata";
    audio.src = "clips/" + encodeURIComponent(a.clip_name);
    row.children[3].prepend(audio);
    row.querySelector("button.view").disabled = false;
  }
}

async function sendFeedback(eventId, action, button) {
  button.disabled = true; button.textContent = "sending…";
  const r = await fetch("api/feedback", {method: "POST", headers: {"Content-Type": "application/json",
    "X-Sentinel-CSRF": info.csrf}, body: JSON.stringify({event_id: eventId, action})});
  button.textContent = r.ok ? "queued…" : "refused";  // the row updates when the daemon journals it
}

function showFigure(a) {
  const fig = document.getElementById("alert-figure");
  fig.querySelector("img").src = `api/alerts/${encodeURIComponent(a.event_id)}/figure.png`;
  fig.querySelector("figcaption").textContent =
    `${a.source} · ${a.start} · ${a.peak_score !== undefined ? "peak " + fmt(a.peak_score) : "opened at " + fmt(a.opening_score)} · threshold ${fmt(a.threshold)}`;
  fig.hidden = false;
}

function showInfo(i) {
  const dl = document.getElementById("info");
  dl.replaceChildren();
  for (const [k, v] of Object.entries(i)) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k.replaceAll("_", " "); dd.textContent = typeof v === "number" && !Number.isInteger(v) ? fmt(v, 3) : String(v);
    dl.append(dt, dd);
  }
}

function apply(snap) {
  for (const [name, s] of Object.entries(snap.sources)) updateSource(name, s, (snap.spectrograms || {})[name], snap.time);
  for (const a of snap.alerts) addAlert(a, !seenAlerts.has(a.event_id));
  document.getElementById("clock").textContent = new Date(snap.time * 1000).toISOString().slice(0, 19) + " UTC";
}

async function start() {
  const first = await (await fetch("api/state", {cache: "no-store"})).json();
  info = first.info; showInfo(info);
  apply(first);
  const link = document.getElementById("link");
  const events = new EventSource(`api/events?after=${first.seq}`);
  events.addEventListener("update", e => {
    apply(JSON.parse(e.data));
    link.textContent = "live"; link.className = "chip up";
  });
  events.onerror = () => { link.textContent = "reconnecting…"; link.className = "chip down"; };
  window.addEventListener("resize", () => {
    for (const c of cards.values()) c.plot.setSize({width: Math.max(300, c.el.clientWidth - 30), height: 170});
  });
}

start();
