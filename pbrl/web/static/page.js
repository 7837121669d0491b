// The labelling page of `pbrl serve`: the pygame window's answers, keys and loop (pbrl/ui/app.py) in a browser.
//
// The invitation link carries the labeler's token after "#": it is read once, kept in this tab's sessionStorage and
// taken out of the address bar. Requests that change anything send it as a Bearer header with a random key of their
// own, so a request retried after a lost reply is stored once. "saved" is shown only once the server has answered:
// by then the answer is on disk. New pairs and progress arrive by server-sent events, without a reload.
"use strict";

const SAID = { left: "left is better", right: "right is better", equal: "equally good", cant_tell: "can't tell" };
const SPEEDS = [0.25, 0.5, 1, 2, 4];
const LOOP_PAUSE_MS = 500; // the last frame holds this long before the clips start again, as in the window
const DEFAULT_TITLE = "Which clip is better? Compare the two and answer.";

const $ = (id) => document.getElementById(id);
const left = $("left");
const right = $("right");

let token = null;
let state = null;
let pairId = null; // the pair whose clips are loaded
let shownId = null; // the pair the server knows is on screen: only it can be answered
let sending = false; // an answer or undo is on its way: keys wait for its reply
let speedIndex = SPEEDS.indexOf(1);
let paused = false;
let answered = []; // pairs answered on this page, for undo
let events = null;
let gone = false;
let lastTouch = 0;
let loopTimer = null;

function readToken() {
  const match = location.hash.match(/token=([A-Za-z0-9_-]+)/);
  if (match) {
    sessionStorage.setItem("pbrl_token", match[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("pbrl_token");
}

function randomKey() {
  const bytes = new Uint8Array(16); // crypto.randomUUID needs https; getRandomValues works on plain http too
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(path, body, tries = 4) {
  for (let i = 1; ; i++) {
    try {
      const response = await fetch(path, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      });
      const data = await response.json().catch(() => ({}));
      if (response.status === 401) leave("This invitation link is not valid (any more): ask for a new one.");
      return { status: response.status, data };
    } catch (err) { // the network, or a server restarting: the same request again, with the same key
      if (i >= tries) return { status: 0, data: { error: "the server cannot be reached; try again" } };
      await sleep(400 * i);
    }
  }
}

function say(text, warn = false) {
  $("message").textContent = text;
  $("message").classList.toggle("warn", warn);
}

function showWaiting(text) {
  $("waiting").textContent = text;
  $("waiting").hidden = !text;
  for (const video of [left, right]) video.style.visibility = text ? "hidden" : "visible";
}

function statusLine() {
  const clips = paused ? "clips paused (space)" : `clips at ${SPEEDS[speedIndex]}x`;
  $("agent").textContent = (state && state.agent ? state.agent + "   " : "") + clips;
  $("speed").textContent = `${SPEEDS[speedIndex]}x`;
  $("pause").textContent = paused ? "Play" : "Pause";
}

function render(next) {
  if (gone || !next) return;
  state = next;
  $("instructions").textContent = next.instructions || DEFAULT_TITLE;
  $("progress").textContent = next.progress;
  const pair = next.pair;
  if (pair) {
    if (pair.id !== pairId) load(pair);
    else if (pair.shown) shownId = pair.id;
  } else if (pairId !== null || !$("waiting").hidden || next.waiting) {
    pairId = shownId = null;
    for (const video of [left, right]) { video.pause(); video.removeAttribute("src"); video.load(); }
    showWaiting(next.waiting || "Loading the next pair...");
  }
  for (const button of document.querySelectorAll("#answers button")) button.disabled = !pair;
  warm(next.upcoming || []);
  statusLine();
}

const warmed = new Set();
function warm(urls) { // fetch the next pair's clips into the browser's cache while this one plays
  for (const url of urls) {
    if (!warmed.has(url)) { warmed.add(url); fetch(url, { credentials: "same-origin" }).catch(() => {}); }
  }
}

function load(pair) {
  pairId = pair.id;
  shownId = pair.shown ? pair.id : null;
  paused = false;
  clearTimeout(loopTimer);
  showWaiting("");
  $("clips").style.setProperty("--aspect", String(pair.width / pair.height));
  for (const video of [left, right]) video.src = pair[video.id];
  const ready = (video) => new Promise((resolve) => {
    if (video.readyState >= 3) resolve();
    else video.addEventListener("canplay", resolve, { once: true });
  });
  Promise.all([ready(left), ready(right)]).then(() => { if (pairId === pair.id) restart(); });
}

function restart() {
  clearTimeout(loopTimer);
  for (const video of [left, right]) { video.currentTime = 0; video.playbackRate = SPEEDS[speedIndex]; }
  if (paused) return;
  const id = pairId;
  Promise.all([left.play(), right.play()]).then(() => markShown(id)).catch(() => {});
}

let showing = null; // the pair whose "shown" is on its way
async function markShown(id) { // both clips play: from now on the pair may be answered
  if (id === null || shownId === id || showing === id) return;
  showing = id;
  const { status } = await post("/api/shown", { pair: id });
  showing = null;
  if (status === 200 && pairId === id) shownId = id;
}

function onEnded() { // both clips at their end: hold the last frame, then loop them together
  if (!(left.ended && right.ended) || paused) return;
  clearTimeout(loopTimer);
  const id = pairId;
  loopTimer = setTimeout(() => { if (pairId === id && !paused) restart(); }, LOOP_PAUSE_MS / SPEEDS[speedIndex]);
}

function keepInStep() { // one clock for both: the right clip follows the left one
  if (paused || left.paused || right.paused || left.ended || right.ended || !state || !state.pair) return;
  if (Math.abs(left.currentTime - right.currentTime) > 1.5 / state.pair.fps) right.currentTime = left.currentTime;
}

async function choose(choice) {
  if (sending) { say(`not saved: ${SAID[choice]} came before the next pair was on screen`, true); return; }
  if (pairId === null || shownId !== pairId) {
    say(`not saved: ${SAID[choice]} came before a pair was on screen`, true);
    return;
  }
  const id = pairId;
  sending = true;
  say(`saving: ${SAID[choice]} (pair #${id})...`);
  const { status, data } = await post("/api/answer", { pair: id, choice, key: randomKey() });
  sending = false;
  if (status === 200) {
    answered.push(id);
    say(`saved: ${SAID[choice]} (pair #${id})`);
    render(data.state);
  } else if (status !== 401) {
    say(`not saved: ${data.error || "the server refused it"}`, true);
    refresh();
  }
}

async function undo() {
  if (sending) return;
  if (!answered.length) { say("nothing to undo on this page", true); return; }
  const id = answered[answered.length - 1];
  sending = true;
  const { status, data } = await post("/api/undo", { pair: id, key: randomKey() });
  sending = false;
  if (status === 200) {
    answered.pop();
    say(`undone: pair #${id} is back on screen`);
    render(data.state);
  } else if (status !== 401) {
    say(`not undone: ${data.error || "the server refused it"}`, true);
  }
}

function setPaused(value) {
  paused = value;
  clearTimeout(loopTimer);
  for (const video of [left, right]) {
    if (paused) video.pause();
    else if (!video.ended) video.play().catch(() => {});
  }
  if (!paused && left.ended && right.ended) restart();
  statusLine();
}

function setSpeed(index) {
  speedIndex = Math.max(0, Math.min(SPEEDS.length - 1, index));
  for (const video of [left, right]) video.playbackRate = SPEEDS[speedIndex];
  statusLine();
}

function act(action) {
  if (action in SAID) choose(action);
  else if (action === "pause") setPaused(!paused);
  else if (action === "replay") { paused = false; restart(); statusLine(); }
  else if (action === "faster") setSpeed(speedIndex + 1);
  else if (action === "slower") setSpeed(speedIndex - 1);
  else if (action === "undo") undo();
  else if (action === "quit") quit();
}

function actionFor(event) { // the window's keys (pbrl.ui.app.action_for): the character typed first, then the key
  if (event.ctrlKey || event.altKey || event.metaKey) return null; // the browser's own shortcuts
  const byText = { "+": "faster", "-": "slower", "=": "equal", " ": "pause", r: "replay", R: "replay", u: "undo",
    U: "undo", q: "quit", Q: "quit" };
  const byKey = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "equal", ArrowDown: "cant_tell",
    Backspace: "undo", Escape: "quit" };
  return byText[event.key] || byKey[event.key] || null;
}

function touch(force) { // a person is here: their pairs stay theirs, and a page paused for being away comes back
  const now = Date.now();
  if (force || (state && state.idle) || now - lastTouch > 20000) {
    lastTouch = now;
    post("/api/touch", {}).then(({ status, data }) => { if (status === 200) render(data); });
  }
}

async function quit() {
  await post("/api/leave", {});
  leave("You have left: your open pairs went back to the queue. Reload the page to label again.");
}

function leave(text) {
  gone = true;
  if (events) events.close();
  pairId = shownId = null;
  for (const video of [left, right]) { video.pause(); video.removeAttribute("src"); video.load(); }
  for (const button of document.querySelectorAll("button")) button.disabled = true;
  showWaiting(text);
}

async function refresh() {
  const response = await fetch("/api/state", { credentials: "same-origin",
    headers: { "Authorization": "Bearer " + token } }).catch(() => null);
  if (response && response.status === 401) leave("This invitation link is not valid (any more): ask for a new one.");
  else if (response && response.ok) render(await response.json());
  return response;
}

function listen() {
  events = new EventSource("/api/events");
  events.addEventListener("state", (event) => render(JSON.parse(event.data)));
  events.addEventListener("revoked", () => leave("This invitation was revoked by whoever runs pbrl serve."));
  events.onerror = async () => {
    if (gone || events.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    await sleep(2000);
    const response = await refresh();
    if (!gone && (!response || response.ok)) listen();
  };
}

document.addEventListener("keydown", (event) => {
  if (gone) return;
  const action = actionFor(event);
  if (action) event.preventDefault();
  if (event.repeat) return;
  touch(action === null);
  if (action) act(action);
});
for (const button of document.querySelectorAll("button[data-choice]")) {
  button.addEventListener("click", () => { touch(false); choose(button.dataset.choice); button.blur(); });
}
for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => { touch(false); act(button.dataset.action); button.blur(); });
}
for (const video of [left, right]) video.addEventListener("ended", onEnded);
setInterval(keepInStep, 250);

async function start() {
  token = readToken();
  if (!token) {
    leave("This page needs your invitation link (the one pbrl serve printed, with #token=... at its end).");
    return;
  }
  const { status, data } = await post("/api/login", {});
  if (status !== 200) return;
  render(data);
  listen();
}
start();
