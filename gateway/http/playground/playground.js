// The playground: POST /v1/classify from a form, the answer drawn as bars. Plain JS, no build
// step, nothing inline (the page is served with Content-Security-Policy: default-src 'self').
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], aliases: [] };

const SCORE_TYPES = {
  SCORE_TYPE_SIGMOID: "multi-label (sigmoid)",
  SCORE_TYPE_SOFTMAX: "single-label (softmax)",
};
const VIEW_NAMES = {
  VIEW_UNSPECIFIED: "model's own labels",
  VIEW_GOEMOTIONS: "GoEmotions (28)",
  VIEW_EKMAN: "Ekman (7)",
  VIEW_SENTIMENT: "sentiment (4)",
};

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = $("token").value.trim();  // read when sending; never stored
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

// A JSON call: resolves to the body, or throws {status, code, message} from the error shape.
async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  } catch (err) {
    throw { status: "NETWORK", code: 0, message: "the gateway could not be reached (" + err.message + ")" };
  }
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    const e = (data && data.error) || {};
    throw { status: e.status || "HTTP " + response.status, code: e.code || response.status,
            message: e.message || text.slice(0, 300) || response.statusText };
  }
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(err) {
  const box = $("error");
  box.replaceChildren(el("strong", "", err.code + " " + err.status), el("span", "", err.message));
  box.hidden = false;
}

// -- models and views ----------------------------------------------------------------------------

async function loadModels() {
  const select = $("model");
  try {
    const body = await call("GET", "/v1/models");
    state.models = body.models || [];
    state.aliases = body.aliases || [];
  } catch (err) {
    select.replaceChildren(el("option", "", "(models not loaded)"));
    $("status").textContent = "Could not list the models; check the token and change it to retry.";
    showError(err);
    return;
  }
  $("error").hidden = true;
  $("status").textContent = "Type a text and press Classify.";
  const models = el("optgroup");
  models.label = "Models";
  for (const m of state.models) models.append(new Option(m.name, m.name));
  const aliases = el("optgroup");
  aliases.label = "Aliases";
  for (const a of state.aliases) {
    aliases.append(new Option(a.name + " → " + a.targets.map((t) => t.model).join(", "), a.name));
  }
  select.replaceChildren(models, aliases);
  select.value = "default";
  select.disabled = false;
  select.dataset.loaded = "true";
  updateViews();
}

// The models a name stands for: itself, or every target of an alias.
function modelsFor(name) {
  const alias = state.aliases.find((a) => a.name === name);
  const names = alias ? alias.targets.map((t) => t.model) : [name];
  return state.models.filter((m) => names.includes(m.name));
}

function updateViews() {
  const chosen = modelsFor($("model").value);
  const view = $("view");
  const previous = view.value;
  // VIEW_UNSPECIFIED (the model's own labels) always; others when every target offers them.
  const views = ["VIEW_UNSPECIFIED"].concat(
    chosen.length ? chosen[0].views.filter((v) => chosen.every((m) => m.views.includes(v))) : []);
  view.replaceChildren(...views.map((v) => new Option(VIEW_NAMES[v] || v, v)));
  if (views.includes(previous)) view.value = previous;
  $("model-info").textContent = chosen.map((m) =>
    `${m.name} v${m.version}: ${m.labels.length} labels, ${SCORE_TYPES[m.scoreType] || m.scoreType}, ` +
    `${m.maxTokens} tokens, ${m.contextTurns ? "reads " + m.contextTurns + " context turns" : "no context"}`
  ).join(" · ");
}

// -- the request ---------------------------------------------------------------------------------

function conversationMode() {
  return document.querySelector("input[name=mode]:checked").value === "conversation";
}

// "ann: I got the job!" lines: the earlier ones are context, the last one is classified.
function parseConversation(raw) {
  const turns = raw.split("\n").filter((line) => line.trim()).map((line) => {
    const m = /^\s*([^:]{1,128}?)\s*:\s?(.*)$/.exec(line);
    return m ? { speaker: m[1], text: m[2] } : { speaker: "", text: line };
  });
  const last = turns.pop() || { speaker: "", text: "" };
  return { text: last.text, speaker: last.speaker, context: turns };
}

function request() {
  const raw = $("text").value;
  const base = conversationMode() ? parseConversation(raw) : { text: raw, speaker: "", context: [] };
  return Object.assign(base, {
    model: $("model").value,
    options: { view: $("view").value || "VIEW_UNSPECIFIED", returnAllScores: true },
  });
}

async function classify() {
  const button = $("classify");
  if (button.disabled) return;
  button.disabled = true;
  $("results").setAttribute("aria-busy", "true");
  $("status").textContent = "Classifying…";
  $("announce").textContent = "";
  $("error").hidden = true;
  try {
    render(await call("POST", "/v1/classify", request()));
    $("status").textContent = "";
  } catch (err) {
    $("output").hidden = true;
    $("status").textContent = "The gateway refused the request.";
    showError(err);
  } finally {
    button.disabled = false;
    $("results").removeAttribute("aria-busy");
  }
}

// -- the answer ----------------------------------------------------------------------------------

function render(r) {
  const scores = (r.scores || []).slice().sort((a, b) => b.score - a.score);
  const softmax = r.scoreType === "SCORE_TYPE_SOFTMAX";
  const predicted = $("predicted");
  predicted.replaceChildren(...(r.predicted.length
    ? r.predicted.map((label) => el("span", "chip", label))
    : [el("span", "none", "none (no label reaches its threshold)")]));
  $("model-used").textContent = `${r.model} v${r.modelVersion}` +
    (r.view !== "VIEW_UNSPECIFIED" ? ` · ${VIEW_NAMES[r.view] || r.view}` : "");
  $("score-type").textContent = SCORE_TYPES[r.scoreType] || r.scoreType;
  $("tokens").textContent = (r.tokenCountIsLowerBound ? "≥ " : "") + r.tokenCount;
  $("truncated").textContent = r.truncated ? `yes (max ${r.maxTokens} tokens)` : `no (max ${r.maxTokens})`;
  $("context-turns").textContent = String(r.contextTurns);
  $("latency").textContent = (Number(r.serverLatencyUs) / 1000).toFixed(1) + " ms";
  $("bars").replaceChildren(...scores.map((s, i) => bar(s, softmax && i === 0)));
  $("output").hidden = false;
  // One short sentence for screen readers (aria-live), rather than every bar.
  $("announce").textContent = `${r.model}: predicted ${r.predicted.join(", ") || "no label"}; ` +
    scores.slice(0, 3).map((s) => `${s.label} ${s.score.toFixed(2)}`).join(", ") + ".";
}

function bar(s, top) {
  const row = el("li", "bar" + (s.predicted ? " predicted" : ""));
  row.dataset.label = s.label;
  const name = el("span", "name", s.label + (top ? " (top)" : ""));
  const track = el("span", "track");
  const fill = el("span", "fill");
  fill.style.width = (Math.max(0, Math.min(1, s.score)) * 100).toFixed(1) + "%";  // CSSOM: CSP allows it
  track.append(fill);
  let detail = `${s.label}: score ${s.score.toFixed(3)}`;
  if (s.threshold > 0) {
    const tick = el("span", "tick");
    tick.style.left = (s.threshold * 100).toFixed(1) + "%";
    track.append(tick);
    detail += `, threshold ${s.threshold.toFixed(2)}`;
  }
  if (s.predicted) detail += ", predicted";
  row.title = detail;
  track.setAttribute("aria-hidden", "true");
  const value = el("span", "value", s.score.toFixed(2));
  value.setAttribute("aria-label", detail);
  row.append(name, track, value);
  return row;
}

// -- wiring --------------------------------------------------------------------------------------

function updateMode() {
  const conv = conversationMode();
  $("text-label").textContent = conv ? "Conversation, one “speaker: text” line per turn" : "Text";
  $("text").placeholder = conv
    ? "ann: I got the job!\nbob: No way, congratulations!\nann: I start on Monday."
    : "Thank you so much, this is wonderful!";
  $("text-hint").textContent = conv
    ? "Earlier lines are the context; the last line is classified. Ctrl+Enter classifies."
    : "Ctrl+Enter classifies.";
  // A conversation needs a model that reads context: switch to one when the current one does not.
  const current = modelsFor($("model").value);
  if (conv && current.length && current.every((m) => !m.contextTurns)) {
    const reader = state.models.find((m) => m.contextTurns > 0);
    if (reader) { $("model").value = reader.name; updateViews(); }
  }
}

$("form").addEventListener("submit", (event) => { event.preventDefault(); classify(); });
$("form").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); classify(); }
});
$("model").addEventListener("change", updateViews);
for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", updateMode);
$("token").addEventListener("change", () => { if (!state.models.length) loadModels(); });
loadModels();
