"""The live page served at ``/``: one self-contained HTML document (no CDN, works offline).

It opens ``/ws``, subscribes to every symbol (``"*"``, with a snapshot of the latest items),
and shows each symbol's latest bar (OHLCV, open time in ISO 8601 UTC, quality level and
score, revision) and latest quote or tick; every two seconds it reads ``/status`` for the
engine state, readiness and the feeds' connection states. With a token, open the page as
``/?token=<token>``: the script passes it on (``?token=`` for the websocket, an
``Authorization`` header for ``/status``). Elements carry ids and ``data-symbol``
attributes so tests (and users' scripts) can read them.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lean_data live</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; background: #fafbfc; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  .bar { display: flex; gap: 1.5em; margin-bottom: 1em; color: #444; }
  table { border-collapse: collapse; margin-bottom: 1.5em; background: #fff; }
  th, td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: right; }
  th { background: #eef1f4; }
  td.text { text-align: left; }
  .ok { color: #116329; font-weight: 600; }
  .bad { color: #a40e26; font-weight: 600; }
  .EXCELLENT, .GOOD { color: #116329; } .FAIR { color: #9a6700; }
  .POOR, .INVALID { color: #a40e26; }
  tr.flash td { background: #fff8c5; }
</style>
</head>
<body>
<h1>lean_data live</h1>
<div class="bar">
  <span>websocket: <b id="conn" class="bad">connecting</b></span>
  <span>engine: <b id="engine">?</b></span>
  <span>ready: <b id="ready">?</b></span>
  <span>items received: <b id="received">0</b></span>
  <span id="problems"></span>
</div>
<h2>Feeds</h2>
<table id="feeds"><thead><tr><th>feed</th><th>status</th><th>messages</th><th>msg/s</th>
<th>last item</th></tr></thead><tbody></tbody></table>
<h2>Bars</h2>
<table id="bars"><thead><tr><th>symbol</th><th>feed</th><th>time (UTC)</th><th>open</th>
<th>high</th><th>low</th><th>close</th><th>volume</th><th>quality</th><th>score</th>
<th>revision</th></tr></thead><tbody></tbody></table>
<h2>Quotes and ticks</h2>
<table id="quotes"><thead><tr><th>symbol</th><th>feed</th><th>time (UTC)</th><th>bid</th>
<th>ask</th><th>price</th><th>size</th><th>quality</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
let received = 0;
function $(id) { return document.getElementById(id); }
function iso(ns) { return ns === null ? "-" : new Date(Number(ns) / 1e6).toISOString(); }
function num(v) { return v === null || v === undefined ? "-" : String(v); }
function row(table, symbol, cells) {
  const body = $(table).tBodies[0];
  let tr = body.querySelector('tr[data-symbol="' + CSS.escape(symbol) + '"]');
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    for (const name of Object.keys(cells)) {
      const td = document.createElement("td");
      td.className = name + (["symbol", "feed", "name"].includes(name) ? " text" : "");
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  for (const [name, value] of Object.entries(cells)) {
    const td = tr.querySelector("td." + name);
    td.textContent = value;
    if (name === "quality") td.className = "quality " + value;
  }
  tr.classList.add("flash");
  setTimeout(() => tr.classList.remove("flash"), 300);
}
function show(m) {
  if (m.type === "bar") {
    row("bars", m.symbol, {symbol: m.symbol, feed: m.feed, time: iso(m.ts_event),
      open: num(m.open), high: num(m.high), low: num(m.low), close: num(m.close),
      volume: num(m.volume), quality: m.quality, score: num(m.score),
      revision: num(m.revision)});
  } else if (m.type === "quote" || m.type === "tick") {
    row("quotes", m.symbol, {symbol: m.symbol, feed: m.feed, time: iso(m.ts_event),
      bid: num(m.bid_close !== undefined ? m.bid_close : m.bid_price),
      ask: num(m.ask_close !== undefined ? m.ask_close : m.ask_price),
      price: num(m.price), size: num(m.size), quality: m.quality});
  } else { return; }
  received += 1;
  $("received").textContent = String(received);
}
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let url = proto + "//" + location.host + "/ws";
  if (token) url += "?token=" + encodeURIComponent(token);
  const ws = new WebSocket(url);
  ws.onopen = () => {
    $("conn").textContent = "open"; $("conn").className = "ok";
    ws.send(JSON.stringify({op: "subscribe", symbols: ["*"], snapshot: true}));
  };
  ws.onmessage = (event) => show(JSON.parse(event.data));
  ws.onclose = (event) => {
    $("conn").textContent = "closed (" + event.code + (event.reason ? " " + event.reason : "")
      + ")";
    $("conn").className = "bad";
    setTimeout(connect, 1000);
  };
}
async function poll() {
  try {
    const headers = token ? {Authorization: "Bearer " + token} : {};
    const response = await fetch("/status", {headers: headers, cache: "no-store"});
    if (response.status === 401) { $("engine").textContent = "unauthorized: open /?token=..."; }
    else {
      const s = await response.json();
      $("engine").textContent = s.engine;
      const ready = s.readiness.ready;
      $("ready").textContent = ready ? "yes" : "no"; $("ready").className = ready ? "ok" : "bad";
      $("problems").textContent = s.readiness.problems.map(
        (p) => [p.feed, p.symbol, p.reason].filter(Boolean).join(" ")).join("; ");
      const now = Date.now();
      for (const [name, feed] of Object.entries(s.feeds)) {
        const c = feed.connection, last = c.last_message_ns;
        row("feeds", name, {name: name, status: c.status, messages: String(feed.messages),
          rate: feed.messages_per_second.toFixed(1),
          last: last ? ((now - last / 1e6) / 1000).toFixed(1) + " s ago" : "-"});
        const td = $("feeds").querySelector('tr[data-symbol="' + CSS.escape(name)
          + '"] td.status');
        td.className = "status " + (c.connected ? "ok" : "bad");
      }
    }
  } catch (error) { $("engine").textContent = "unreachable"; }
  setTimeout(poll, 2000);
}
connect();
poll();
</script>
</body>
</html>
"""
