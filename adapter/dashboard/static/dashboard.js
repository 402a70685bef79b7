// The live dashboard: polls /calls every 2 s and shows one call's timeline on click.
// Every value is put in the page with textContent: nothing from the server is parsed as HTML.
"use strict";

const POLL_MS = 2000;
let selected = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function clock(epoch) {
  return new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function seconds(value) {
  return value.toFixed(1) + " s";
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null ? "–" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function callButton(call) {
  const button = el("button", call.callId, "call-id");
  button.type = "button";
  button.addEventListener("click", () => { selected = call.callId; showCall(); });
  return button;
}

function fill(tbody, rows, columns, emptyText) {
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    const td = el("td", emptyText, "empty");
    td.colSpan = columns;
    const tr = document.createElement("tr");
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
}

function renderCalls(history) {
  const inflight = history.inFlight;
  const finished = history.calls.filter((c) => !c.inFlight);
  fill(document.querySelector("#inflight tbody"), inflight.map((c) => {
    const tr = row([callButton(c), c.front, clock(c.startedAt), c.phase, c.attempts, seconds(c.durationSeconds)]);
    tr.dataset.callId = c.callId;
    return tr;
  }), 6, "no call is with GenerativeAgent");
  fill(document.querySelector("#recent tbody"), finished.map((c) => {
    const outcome = el("span", c.outcome || "–", "outcome outcome-" + (c.outcome || "none"));
    const tr = row([callButton(c), c.front, clock(c.startedAt), outcome, c.route, c.reason || "", c.attempts, seconds(c.durationSeconds)]);
    tr.dataset.callId = c.callId;
    return tr;
  }), 8, "no call yet");
  const stats = history.stats;
  document.getElementById("stat-inflight").textContent = String(stats.inFlight);
  document.getElementById("stat-rate").textContent = stats.handoffsPerMinute.toFixed(1);
  document.getElementById("stat-fallback").textContent =
    stats.fallbackRate === null ? "–" : (stats.fallbackRate * 100).toFixed(0) + " %";
  document.getElementById("stat-latency").textContent = stats.createMs.count
    ? stats.createMs.p50.toFixed(0) + " / " + stats.createMs.p95.toFixed(0) + " ms" : "–";
}

function renderCall(call) {
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-id").textContent = call.callId;
  document.getElementById("detail-summary").textContent =
    call.front + ", started " + clock(call.startedAt) + ", phase " + call.phase +
    ", outcome " + (call.outcome || "none") + ", route " + (call.route || "none") +
    (call.reason ? " (" + call.reason + ")" : "") + ", task " + (call.taskName || "–");
  const attempts = [];
  for (const handoff of call.handoffs) {
    for (const a of handoff.attempts) {
      attempts.push(el("li", "hand-off " + handoff.number + ", attempt #" + a.number + " " + a.transferId +
        ": " + (a.outcome || "pending") + (a.detail ? " (" + a.detail + ")" : "")));
    }
  }
  document.getElementById("detail-attempts").replaceChildren(...attempts);
  const rows = call.timeline.map((entry) => {
    const detail = entry.detail + (entry.answeredInMs !== undefined ? " (answered in " + entry.answeredInMs.toFixed(0) + " ms)" : "");
    return row([entry.offsetMs.toFixed(0) + " ms", entry.event, detail]);
  });
  document.querySelector("#timeline tbody").replaceChildren(...rows);
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(path.split("?")[0] + ": HTTP " + response.status);
  return response.json();
}

async function showCall() {
  if (selected === null) return;
  try {
    renderCall(await getJson("/calls/" + encodeURIComponent(selected)));
  } catch (error) {
    setStatus(error.message, true);
  }
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

async function poll() {
  try {
    const history = await getJson("/calls?limit=100");
    renderCalls(history);
    setStatus("updated " + clock(history.now) + " · " + history.stats.calls + " calls", false);
    if (selected !== null) await showCall();
  } catch (error) {
    setStatus("cannot read the calls: " + error.message, true);
  }
  setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", poll);
