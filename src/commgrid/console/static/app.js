// The commgrid operator console: plain DOM code, no build step. Text always goes in through textContent.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const MAX_ROWS = 100;
const FLASH_BELOW = 10;  // new rows flash only when they arrive slowly enough to be read
const REFRESH_MS = 2000;
let selectedSeq = null;
let stream = null;
let olderCursor = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
  };
  const response = await fetch("/dashboard/api/" + path, options);
  const data = await response.json();
  if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
  return data;
}

function when(iso) { return iso ? iso.replace("T", " ").replace("+00:00", "Z") : ""; }
function clock(iso) { return iso ? iso.slice(11, 23) : ""; }  // the time of day, UTC; the date is in the title

// tabs --------------------------------------------------------------------------------------------------
const loaders = { topics: loadOverview, deadletters: loadDeadLetters, communication: loadCommunication };

function showTab() {
  const tab = (location.hash || "#events").slice(1);
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== "tab-" + tab;
  for (const link of document.querySelectorAll("nav a[data-tab]")) link.classList.toggle("active", link.dataset.tab === tab);
  if (loaders[tab]) loaders[tab]();
}

function currentTab() { return (location.hash || "#events").slice(1); }

// events ------------------------------------------------------------------------------------------------
function searchParams() {
  const form = new FormData(document.getElementById("search"));
  const params = new URLSearchParams();
  for (const [k, v] of form) if (v) params.set(k, v);
  return params;
}

function eventRow(e, fresh) {
  const row = el("tr", { class: "event" + (fresh ? " new" : ""), "data-seq": e.seq, "data-id": e.id,
                         onclick: () => openJourney(e.seq) },
    el("td", { title: when(e.publishedAt) }, clock(e.publishedAt)), el("td", { title: e.topic }, e.topic),
    el("td", { title: e.type }, e.type), el("td", { title: e.subject }, e.subject),
    el("td", { title: e.id }, el("code", {}, e.id)));
  if (e.seq === selectedSeq) row.classList.add("selected");
  return row;
}

async function search() {
  const data = await api("events?" + searchParams());
  const body = document.querySelector("#events tbody");
  body.replaceChildren(...data.events.map((e) => eventRow(e, false)));
  olderCursor = data.before;
  document.getElementById("older").hidden = olderCursor === null;
  connectStream();
}

async function older() {
  const params = searchParams();
  params.set("before", olderCursor);
  const data = await api("events?" + params);
  document.querySelector("#events tbody").append(...data.events.map((e) => eventRow(e, false)));
  olderCursor = data.before;
  document.getElementById("older").hidden = olderCursor === null;
}

function connectStream() {
  if (stream) stream.close();
  const live = document.getElementById("live");
  stream = new EventSource("/dashboard/api/stream?" + searchParams());
  stream.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  stream.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
  stream.onmessage = (message) => {
    const update = JSON.parse(message.data);
    const body = document.querySelector("#events tbody");
    const flash = update.events.length < FLASH_BELOW;
    body.prepend(...update.events.reverse().map((e) => eventRow(e, flash)));
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    if (update.skipped) live.textContent = `live (${update.skipped} events skipped at this rate)`;
  };
}

// an event's journey ------------------------------------------------------------------------------------
async function openJourney(seq) {
  selectedSeq = seq;
  for (const row of document.querySelectorAll("#events tr.event")) row.classList.toggle("selected", Number(row.dataset.seq) === seq);
  await renderJourney();
}

function attemptTable(attempts) {
  if (!attempts.length) return el("p", { class: "muted" }, "No attempt recorded yet.");
  return el("table", { class: "attempts" },
    el("thead", {}, el("tr", {}, ["#", "time", "outcome", "HTTP", "duration", "response / error"].map((h) => el("th", {}, h)))),
    el("tbody", {}, attempts.map((a) => el("tr", { class: "attempt" },
      el("td", {}, a.attempt), el("td", {}, when(a.at)),
      el("td", { class: a.outcome === "Succeeded" ? "ok" : "bad" }, a.outcome),
      el("td", {}, a.status ?? "–"), el("td", {}, `${a.durationMs} ms`),
      el("td", {}, a.error ? el("span", { class: "bad" }, a.error) : el("code", {}, a.response))))));
}

function routeView(r) {
  const state = r.state.replace(" ", "-");
  return el("div", { class: "route " + state, "data-subscription": r.subscription, "data-state": r.state },
    el("div", {}, el("strong", {}, r.subscription), " ", el("span", { class: "badge " + r.status }, r.status), " ",
       el("span", { class: "state" }, r.state)),
    r.reason ? el("div", { class: "reason" }, r.reason) : null,
    r.matched ? attemptTable(r.attempts) : null,
    r.nextAttemptAt ? el("div", { class: "next" }, "Next attempt at ", when(r.nextAttemptAt)) : null,
    r.deadLetter ? el("div", { class: "bad" }, `Dead-lettered ${when(r.deadLetter.at)}: ${r.deadLetter.reason} `,
      el("button", { class: "small", onclick: () => redeliver({ ids: [r.deadLetter.id] }).then(renderJourney) }, "Redeliver")) : null);
}

async function renderJourney() {
  if (selectedSeq === null) return;
  const j = await api("events/" + selectedSeq);
  const e = j.event;
  document.getElementById("journey").replaceChildren(
    el("h3", {}, e.type), el("div", { class: "muted" }, `${e.topic} · ${e.subject} · id `, el("code", {}, e.id),
       ` · published ${when(e.publishedAt)}`),
    el("pre", { class: "body" }, JSON.stringify(e.body, null, 2)),
    el("h3", {}, "Subscriptions"),
    ...(j.subscriptions.length ? j.subscriptions.map(routeView) : [el("p", { class: "muted" }, "The topic has no subscriptions.")]));
}

// topics and subscriptions ------------------------------------------------------------------------------
async function loadOverview() {
  const data = await api("overview");
  document.getElementById("resource").textContent = "console · resource " + data.resource;
  fillTopicChoices(data.topics);
  document.querySelector("#topics tbody").replaceChildren(...data.topics.map((t) => el("tr", {},
    el("td", {}, t.name), el("td", {}, t.kind), el("td", {}, t.inputSchema), el("td", {}, el("code", {}, t.endpoint ?? "(system topic)")),
    el("td", {}, t.events), el("td", {}, t.pending), el("td", {}, t.deadLetters >= 1000 ? "1000+" : t.deadLetters))));
  document.getElementById("subscriptions").replaceChildren(...data.subscriptions.map((s) => el("div", { class: "card", "data-subscription": s.name },
    el("div", {}, el("strong", {}, `${s.topic} / ${s.name}`), " ",
       el("span", { class: "badge " + (s.status === "Active" ? "Active" : "bad") }, s.status)),
    el("div", {}, "endpoint ", el("code", {}, s.endpoint), ` · ${s.schema} · ${s.pending} pending`),
    el("div", { class: "muted" }, `batch ${s.delivery.maxEventsPerBatch} events / ${s.delivery.preferredBatchSizeInKilobytes} KB · `
       + `${s.retryPolicy.maxDeliveryAttempts} attempts, TTL ${s.retryPolicy.eventTimeToLiveInMinutes} min`
       + (s.deadLetterDestination ? ` · dead letters to ${s.deadLetterDestination.endpointType}` : "")
       + (s.delivery.headers.length ? ` · headers ${s.delivery.headers.join(", ")}` : "")
       + (s.expirationTimeUtc ? ` · expires ${s.expirationTimeUtc}` : "")),
    el("div", {}, "filter ", el("code", {}, JSON.stringify(s.filter))),
    s.recent.length ? el("div", {}, "recent: ", s.recent.map((a) => el("span", { class: a.outcome === "Succeeded" ? "ok" : "bad" },
      `${a.outcome}${a.status ? " " + a.status : ""} (${when(a.at)}); `))) : el("div", { class: "muted" }, "no deliveries yet"))));
}

function fillTopicChoices(topics) {
  const select = document.getElementById("search-topic");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "all topics"), ...topics.map((t) => el("option", { value: t.name }, t.name)));
  select.value = chosen;
}

// dead letters ------------------------------------------------------------------------------------------
async function redeliver(body) {
  return api("deadletters/redeliver", body);
}

async function loadDeadLetters() {
  const data = await api("deadletters");
  document.querySelector("#deadletters tbody").replaceChildren(...data.deadLetters.map((d) => el("tr", { "data-id": d.id },
    el("td", {}, d.id), el("td", {}, d.topic), el("td", {}, d.subscription),
    el("td", {}, el("a", { href: "#events", onclick: () => openJourney(d.event.seq) }, d.event.id)),
    el("td", {}, d.reason), el("td", {}, d.attempts), el("td", {}, `${d.lastOutcome ?? ""} ${d.lastStatus ?? ""}`),
    el("td", {}, when(d.deadLetteredAt)),
    el("td", {}, el("button", { class: "small", onclick: () => redeliver({ ids: [d.id] }).then(loadDeadLetters) }, "Redeliver")))));
  const subs = [...new Map(data.deadLetters.map((d) => [d.topic + "/" + d.subscription, d])).values()];
  document.getElementById("redeliver-all").replaceChildren(...subs.map((d) => el("button", {
    onclick: () => redeliver({ topic: d.topic, subscription: d.subscription }).then(loadDeadLetters) },
    `Redeliver all of ${d.topic} / ${d.subscription}`)));
}

// Communication Services --------------------------------------------------------------------------------
async function loadCommunication() {
  const data = await api("communication");
  const to = document.getElementById("sms-to");
  const chosen = to.value;
  to.replaceChildren(...data.phoneNumbers.map((n) => el("option", { value: n.phoneNumber }, n.phoneNumber)));
  if (chosen) to.value = chosen;
  document.querySelector("#numbers tbody").replaceChildren(...data.phoneNumbers.map((n) => el("tr", {},
    el("td", {}, n.phoneNumber), el("td", {}, n.kind), el("td", {}, when(n.addedAt)))));
  document.querySelector("#sms-sent tbody").replaceChildren(...data.smsSent.map((m) => el("tr", {},
    el("td", {}, el("code", {}, m.messageId)), el("td", {}, m.from), el("td", {}, m.to), el("td", {}, m.message),
    el("td", {}, when(m.sentAt)),
    el("td", {}, m.report ? el("span", { class: m.report.status === "Delivered" ? "ok" : "bad" }, `${m.report.status}: ${m.report.details}`)
                          : (m.deliveryReport ? "awaited" : "not requested")))));
  document.getElementById("threads").replaceChildren(...data.chatThreads.map((t) => el("div", { class: "card" },
    el("strong", {}, t.topic || "(no topic)"), " ", el("code", { class: "muted" }, t.id), t.deleted ? " (deleted)" : "",
    el("div", { class: "muted" }, "participants: ", t.participants.join(", ")),
    el("ul", {}, t.messages.map((m) => el("li", { class: m.deleted ? "muted" : "" }, `${when(m.createdOn)} ${m.sender ?? m.type}: ${m.deleted ? "(deleted)" : m.text ?? ""}`))))));
  document.querySelector("#identities tbody").replaceChildren(...data.identities.map((i) => el("tr", {},
    el("td", {}, el("code", {}, i.id)), el("td", {}, when(i.createdAt)))));
}

async function receiveSms(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = document.getElementById("sms-result");
  try {
    const sms = await api("communication/sms/receive", Object.fromEntries(form));
    result.className = "ok";
    result.textContent = `Received ${sms.messageId}`;
  } catch (error) {
    result.className = "bad";
    result.textContent = error.message;
  }
}

// start -------------------------------------------------------------------------------------------------
document.getElementById("search").addEventListener("submit", (e) => { e.preventDefault(); search(); });
document.getElementById("older").addEventListener("click", older);
document.getElementById("sms-form").addEventListener("submit", receiveSms);
window.addEventListener("hashchange", showTab);
showTab();
loadOverview();
search();
setInterval(() => {
  if (document.hidden) return;
  if (currentTab() === "events") renderJourney();
  else if (loaders[currentTab()]) loaders[currentTab()]();
}, REFRESH_MS);
