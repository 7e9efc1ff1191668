// The cachecash dashboard: reads the node over its JSON-RPC WebSocket and
// redraws the current page on every new head. Everything from the node is
// inserted as text, never as markup.
"use strict";

const state = {
  ws: null, next: 1, pending: new Map(), head: null, served: [], busy: false,
  config: { actions: false }, notice: null,
};

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// A definition list; a value is text or an element (a link).
function kv(pairs) {
  const dl = el("dl", null, "kv");
  for (const [k, v] of pairs) {
    const dd = el("dd");
    if (v instanceof Node) dd.append(v);
    else dd.textContent = v === undefined || v === null ? "—" : String(v);
    dl.append(el("dt", k), dd);
  }
  return dl;
}

function addRow(t, row) {
  const r = el("tr");
  for (const cell of row) {
    if (cell instanceof Node) {
      const td = el("td");
      td.append(cell);
      r.append(td);
    } else {
      r.append(el("td", cell, typeof cell === "string" && cell.startsWith("0x") ? "hash" : null));
    }
  }
  t.append(r);
}

function table(headers, rows) {
  const t = el("table");
  const tr = el("tr");
  for (const h of headers) tr.append(el("th", h));
  t.append(tr);
  for (const row of rows) addRow(t, row);
  return t;
}

function button(text, onclick, id) {
  const b = el("button", text);
  b.type = "button";
  if (id) b.id = id;
  b.onclick = onclick;
  return b;
}

// An action: only offered with --dashboard-actions, confirmed by the
// operator, and served by the node only under its unsafe-RPC policy.
async function act(question, method, params, describe) {
  if (!window.confirm(question)) return;
  try {
    state.notice = { ok: true, text: describe(await call(method, params)) };
  } catch (e) {
    state.notice = { ok: false, text: `${method} refused: ${e.message}` };
  }
  render();
}

function notice() {
  if (!state.notice) return [];
  const p = el("p", state.notice.text, state.notice.ok ? "ok" : "bad");
  p.id = "notice";
  return [p];
}

function section(title, ...children) {
  const s = el("section");
  s.append(el("h3", title), ...children);
  return s;
}

function link(text, route) {
  const a = el("a", text);
  a.href = "#/" + route;
  return a;
}

const CCH = 10n ** 12n;
function cch(units) {
  try {
    const v = BigInt(units);
    const whole = v / CCH;
    const frac = (v % CCH).toString().padStart(12, "0").replace(/0+$/, "");
    return (frac ? `${whole}.${frac}` : `${whole}`) + " CCH";
  } catch (_) {
    return String(units);
  }
}

// The proof-of-work difficulty of a target: the expected number of hashes
// to find a block, 2^256 / (target + 1) (the runtime's `Target::work`).
function difficulty(target) {
  try {
    return (2n ** 256n / (BigInt(target) + 1n)).toLocaleString("en-US");
  } catch (_) {
    return "?";
  }
}

function mib(bytes) {
  return (Number(bytes) / 1048576).toFixed(1) + " MiB";
}

function call(method, params = []) {
  return new Promise((resolve, reject) => {
    const id = state.next++;
    state.pending.set(id, { resolve, reject });
    state.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  });
}

async function maybe(method, params) {
  try {
    return await call(method, params);
  } catch (e) {
    return { error: e.message || String(e) };
  }
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.id !== undefined && state.pending.has(msg.id)) {
    const p = state.pending.get(msg.id);
    state.pending.delete(msg.id);
    if (msg.error) p.reject(new Error(msg.error.message));
    else p.resolve(msg.result);
    return;
  }
  if (msg.method === "chain_newHead" && msg.params) {
    state.head = msg.params.result;
    document.getElementById("live").textContent = `live · block #${state.head.number}`;
    render();
  }
}

async function chainPage(main) {
  const [name, header, sync, peers] = await Promise.all([
    maybe("system_chain"), call("chain_getHeader"), maybe("system_syncState"), maybe("system_peers"),
  ]);
  main.append(el("h2", `Chain: ${typeof name === "string" ? name : "?"}`));
  main.append(section("Head", kv([
    ["block", `#${header.number}`],
    ["hash", header.hash],
    ["time", new Date(Number(header.timestamp)).toISOString()],
    ["difficulty", `${difficulty(header.target)} expected hashes per block (target ${header.target})`],
    ["peers", Array.isArray(peers) ? peers.length : "—"],
    ["sync", sync && !sync.error ? `${sync.currentBlock} of ${sync.highestBlock}` : "—"],
  ])));
  const rows = [];
  for (let n = header.number; n >= 0 && n > header.number - 10; n--) {
    const hash = await call("chain_getBlockHash", [n]);
    if (!hash) break;
    const block = await call("chain_getBlock", [hash]);
    rows.push([link(`#${n}`, `explore/${n}`), hash, (block.transactions || []).length,
      new Date(Number(block.header.timestamp)).toISOString()]);
  }
  main.append(section("Recent blocks", table(["block", "hash", "transactions", "time"], rows)));
}

async function cachePage(main) {
  main.append(el("h2", "Cache"), ...notice());
  if (state.config.actions) {
    main.append(button("Claim now", () => act(
      "Run a claim pass now? Winning tickets are claimed on chain; the claims' fees are paid from the cache's account.",
      "cache_claimNow", [],
      (r) => `Claim pass done: ${r.sent} claim(s) sent, ${r.updated} ticket record(s) updated, ${r.heldBack} held back by their fee.`,
    ), "claim-now"));
  }
  const status = await maybe("cdn_cacheStatus");
  if (status.error) {
    main.append(section("Not a cache", el("p", status.error, "muted")));
    return;
  }
  state.served.push(Number(status.bytesServed));
  if (state.served.length > 60) state.served.shift();
  const bars = el("div", null, "bars");
  const top = Math.max(1, ...state.served);
  for (const v of state.served) {
    const b = el("div");
    b.style.height = `${Math.max(1, (60 * v) / top)}px`;
    b.title = mib(v);
    bars.append(b);
  }
  main.append(section("Store", kv([
    ["held", `${mib(status.bytes)} of ${mib(status.quota)} (${status.chunks} chunks)`],
    ["hit ratio", `${(100 * status.hitRatio).toFixed(1)} %`],
    ["served", `${mib(status.bytesServed)} in ${status.chunksServed} chunks`],
    ["fills", status.fills],
    ["refused", status.refused],
  ])), section("Bytes served, by head", bars));
  const earnings = await maybe("cache_earnings");
  if (!earnings.error) {
    const rows = Object.entries(earnings.totals || {}).map(([s, t]) => [s, t.tickets, cch(t.value)]);
    main.append(section("Earnings", kv([
      ["account", earnings.account],
      ["balance", cch(earnings.balance)],
      ["net earned", cch(earnings.net)],
      ["fees paid", cch(earnings.fees)],
    ]), table(["tickets", "count", "value"], rows)));
  }
  const tickets = await maybe("cache_tickets", [null, null, 20]);
  if (!tickets.error) {
    const rows = (tickets.tickets || []).map((t) => [
      t.escrow, t.round, t.number, t.state,
      t.block ? link(`#${t.block[1]}`, `explore/${t.block[1]}`) : (t.reason || ""),
    ]);
    main.append(section("Tickets", table(["escrow", "round", "number", "state", "claim block"], rows)));
  }
}

async function publisherPage(main) {
  main.append(el("h2", "Publisher"), ...notice());
  const status = await maybe("cdn_publisherStatus");
  if (status.error) {
    main.append(section("Not a publisher", el("p", status.error, "muted")));
    return;
  }
  const escrows = await maybe("publisher_escrows");
  if (Array.isArray(escrows)) {
    const headers = ["escrow", "payment", "penalty", "rounds left", "unlocks at"];
    if (state.config.actions) headers.push("");
    main.append(section("Escrows", table(headers, escrows.map((e) => {
      const row = [link(e.escrow, `explore/${e.escrow}`), cch(e.payment || 0),
        cch(e.penalty || 0), e.roundsLeft, `#${e.unlockHeight}`];
      if (state.config.actions) {
        row.push(button("Close", () => act(
          `Close escrow ${e.escrow}? What is left of its deposits returns to the funder; it can no longer pay caches.`,
          "publisher_closeEscrow", [e.escrow],
          (tx) => `Close of escrow ${e.escrow} submitted in transaction ${tx}.`,
        )));
      }
      return row;
    }))));
  }
  main.append(section("Caches hired", table(["account", "peer", "health", "blames"],
    status.caches.map((c) => [c.account, c.peerId, c.healthy ? "healthy" : "avoided", c.blames]))));
  main.append(section("Catalog", table(["path", "version", "size", "chunks", "type"],
    status.catalog.map((o) => [o.path, o.version, o.size, o.chunks, o.contentType]))));
  main.append(section("Activity", kv([
    ["sessions", status.sessions], ["bundles", status.bundles], ["re-issued", status.reissued],
    ["secrets", status.secrets], ["fills", status.fills],
  ])));
}

const HASH = /^0x[0-9a-fA-F]{64}$/;

// A 0x id as a link to its explorer page (accounts, escrows, transactions).
function idLink(id) {
  return typeof id === "string" && HASH.test(id) ? link(id, `explore/${id}`) : id;
}

function callName(call) {
  return (call && call.type) || "—";
}

// A call's fields beyond its type: ids link to the explorer, amounts are
// shown in CCH, nested values as their JSON text.
function callFields(call) {
  const pairs = [];
  for (const [k, v] of Object.entries(call || {})) {
    if (k === "type") continue;
    if (["amount", "payment", "penalty"].includes(k)) pairs.push([k, cch(v)]);
    else if (Array.isArray(v)) pairs.push([k, `${v.length} item(s)`]);
    else if (v !== null && typeof v === "object") pairs.push([k, JSON.stringify(v)]);
    else pairs.push([k, idLink(v)]);
  }
  return pairs;
}

function transactionSection(found) {
  const t = found.transaction;
  const inner = (t && t.tx) || {};
  const block = found.blockNumber !== null && found.blockNumber !== undefined
    ? link(`#${found.blockNumber}`, `explore/${found.blockNumber}`)
    : link(found.blockHash, `explore/${found.blockHash}`);
  const s = section("Transaction", kv([
    ["hash", t ? t.hash : "—"],
    ["block", block],
    ["block hash", found.blockHash],
    ["index", found.index],
    ["signer", idLink(inner.signer)],
    ["nonce", inner.nonce],
    ["fee", inner.fee === undefined ? "—" : cch(inner.fee)],
    ["call", callName(inner.call)],
    ...callFields(inner.call),
  ]));
  s.id = "transaction";
  return s;
}

// The explorer: a search box and what the query found. On a new head only
// the result is redrawn, so the search box keeps what is being typed; the
// returned element is that result.
async function explorePage(main, query) {
  const out = el("div");
  out.id = "result";
  if (query) await lookup(out, query);
  const current = document.getElementById("search");
  if (current && current.dataset.query === query && document.getElementById("result")) {
    return out;
  }
  const form = el("form");
  form.id = "search";
  form.dataset.query = query;
  const input = el("input");
  input.placeholder = "block number or hash, transaction hash, account or escrow id (0x…)";
  input.value = query || "";
  form.append(input);
  form.onsubmit = (e) => {
    e.preventDefault();
    location.hash = "#/explore/" + encodeURIComponent(input.value.trim());
  };
  main.append(el("h2", "Explorer"), form, out);
  return null;
}

// Looks `query` up: a block (by number or hash), a transaction, an escrow
// or an account, in that order.
async function lookup(out, query) {
  let hash = null;
  if (/^\d+$/.test(query)) hash = await maybe("chain_getBlockHash", [Number(query)]);
  else if (HASH.test(query)) hash = query;
  const block = hash && !hash.error ? await maybe("chain_getBlock", [hash]) : null;
  if (block && !block.error) {
    const h = block.header;
    out.append(section(`Block #${h.number}`, kv([
      ["hash", h.hash], ["parent", h.parentHash], ["time", new Date(Number(h.timestamp)).toISOString()],
      ["miner", idLink(h.miner)], ["state root", h.stateRoot],
    ]), table(["transaction", "signer", "call"], (block.transactions || []).map((t) => [
      idLink(t.hash), idLink(t.tx && t.tx.signer), callName(t.tx && t.tx.call),
    ]))));
    return;
  }
  if (HASH.test(query)) {
    const found = await maybe("chain_getTransaction", [query]);
    if (found && !found.error) {
      out.append(transactionSection(found));
      return;
    }
    const escrow = await maybe("state_getEscrow", [query]);
    if (escrow && !escrow.error) {
      out.append(section("Escrow", kv([
        ["funder", idLink(escrow.funder)], ["payment", cch(escrow.payment)], ["penalty", cch(escrow.penalty)],
        ["penalised", escrow.penalised], ["rounds", `${escrow.terms.firstRound}–${escrow.terms.lastRound}`],
      ])), await historySection(query));
      return;
    }
    const account = await maybe("state_getAccount", [query]);
    if (account && !account.error) {
      out.append(section("Account", kv([["account", query], ["balance", cch(account.balance)],
        ["nonce", account.nonce]])), await historySection(query));
      return;
    }
  }
  out.append(el("p", `Nothing found for ${query}`, "bad"));
}

// The blocks and transactions that touched an account or an escrow, newest
// first, 20 at a time.
async function historySection(subject) {
  const t = table(["block", "time", "what", "transaction", "account", "to", "amount"], []);
  const more = button("Older entries", () => load().catch((e) => {
    more.replaceWith(el("p", `Error: ${e.message}`, "bad"));
  }), "history-more");
  let before = null;
  let shown = 0;
  async function load() {
    const page = await call("chain_getHistory", [subject, before, 20]);
    for (const h of page.entries) {
      shown++;
      addRow(t, [link(`#${h.blockNumber}`, `explore/${h.blockNumber}`),
        new Date(Number(h.timestamp)).toISOString(), h.kind, h.transaction ? idLink(h.transaction) : "—", h.account,
        h.dest || "", h.amount ? cch(h.amount) : ""]);
    }
    before = page.next;
    more.hidden = !before;
  }
  await load();
  const s = section("History", t, more);
  if (!shown) s.append(el("p", "Nothing on chain touched it yet.", "muted"));
  return s;
}

async function render() {
  if (state.busy) return;
  state.busy = true;
  try {
    const [page, ...rest] = (location.hash.replace(/^#\/?/, "") || "chain").split("/");
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("active", a.getAttribute("href") === `#/${page}`);
    }
    const main = el("div");
    let result = null;
    if (page === "cache") await cachePage(main);
    else if (page === "publisher") await publisherPage(main);
    else if (page === "explore") result = await explorePage(main, decodeURIComponent(rest.join("/")));
    else await chainPage(main);
    if (result) document.getElementById("result").replaceWith(result);
    else document.getElementById("main").replaceChildren(...main.childNodes);
  } catch (e) {
    document.getElementById("main").replaceChildren(el("p", `Error: ${e.message}`, "bad"));
  } finally {
    state.busy = false;
  }
}

async function start() {
  const config = await (await fetch("/config.json")).json();
  state.config = config;
  state.ws = new WebSocket(`ws://${location.hostname}:${config.rpcPort}`);
  state.ws.onmessage = onMessage;
  state.ws.onclose = () => {
    document.getElementById("live").textContent = "disconnected: reload when the node is back";
  };
  state.ws.onopen = async () => {
    document.getElementById("live").textContent = "live";
    await call("chain_subscribeNewHeads");
    render();
  };
  window.addEventListener("hashchange", () => {
    state.notice = null;
    render();
  });
}

start();
