// ovchat's chat page: streams /v1/chat/completions, keeps the conversation in localStorage.
// Safety rule: text from the model (or from storage) only ever reaches the DOM as textContent.
"use strict";

const CHAT_STORE = "ovchat.chat.v1";
const SETTINGS_STORE = "ovchat.settings.v1";
const KEY_STORE = "ovchat.apiKey"; // sessionStorage: gone when the tab closes
const MODEL_STORE = "ovchat.model.v1"; // localStorage: the picked model, picked again after a reload

const $ = (id) => document.getElementById(id);
let chat = loadChat();
let models = []; // the cards of GET /v1/models
let running = null; // the AbortController of the answer being streamed
let keyWaiters = []; // requests waiting for the key form

// ---- storage -------------------------------------------------------------------------------------

function loadJSON(store, key) {
  try {
    return JSON.parse(store.getItem(key));
  } catch {
    return null;
  }
}

function loadChat() {
  const saved = loadJSON(localStorage, CHAT_STORE);
  const messages = Array.isArray(saved?.messages) ? saved.messages : [];
  const valid = (m) => m && (m.role === "user" || m.role === "assistant") && typeof m.content === "string";
  return { messages: messages.filter(valid) };
}

function saveChat() {
  localStorage.setItem(CHAT_STORE, JSON.stringify(chat));
}

function loadSettings() {
  const saved = loadJSON(localStorage, SETTINGS_STORE) || {};
  if (typeof saved.system === "string") $("system").value = saved.system;
  if (saved.temperature !== undefined) $("temperature").value = saved.temperature ?? "";
  if (saved.maxTokens !== undefined) $("max-tokens").value = saved.maxTokens ?? "";
}

function readSettings() {
  const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value)); // empty: server default
  const settings = {
    system: $("system").value.trim(),
    temperature: number("temperature"),
    maxTokens: number("max-tokens"),
  };
  localStorage.setItem(SETTINGS_STORE, JSON.stringify(settings));
  return settings;
}

// ---- Markdown, built as DOM nodes ----------------------------------------------------------------

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
// `code`, **bold**, __bold__, *italic*, _italic_ (not inside words, so snake_case stays as it is)
const INLINE =
  /`([^`\n]+)`|\*\*(\S(?:[^\n]*?\S)?)\*\*|(?<!\w)__(\S(?:[^\n]*?\S)?)__(?!\w)|\*(\S(?:[^*\n]*?\S)?)\*|(?<!\w)_(\S(?:[^_\n]*?\S)?)_(?!\w)/g;

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

function renderMarkdown(text, into) {
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length) {
    if (FENCE.test(lines[i])) i = codeBlock(lines, i, into);
    else if (HEADING.test(lines[i])) i = heading(lines, i, into);
    else if (ITEM.test(lines[i])) i = list(lines, i, into);
    else if (!lines[i].trim()) i += 1;
    else i = paragraph(lines, i, into);
  }
}

function codeBlock(lines, start, into) {
  const [, marker, language] = lines[start].match(FENCE);
  let end = start + 1;
  while (end < lines.length && !lines[end].trim().startsWith(marker)) end += 1;
  const pre = el("pre");
  const code = el("code");
  if (language) code.dataset.language = language;
  code.textContent = lines.slice(start + 1, end).join("\n"); // an unclosed fence (still streaming) runs on
  pre.append(code);
  into.append(pre);
  return end + 1;
}

function heading(lines, start, into) {
  const [, hashes, text] = lines[start].match(HEADING);
  const node = el(`h${hashes.length}`);
  renderInline(text, node);
  into.append(node);
  return start + 1;
}

function list(lines, start, into) {
  const ordered = /\d/.test(lines[start].match(ITEM)[1]);
  const node = el(ordered ? "ol" : "ul");
  let i = start;
  for (let m; i < lines.length && (m = lines[i].match(ITEM)) && /\d/.test(m[1]) === ordered; i += 1) {
    const item = el("li");
    renderInline(m[2], item);
    node.append(item);
  }
  into.append(node);
  return i;
}

function paragraph(lines, start, into) {
  const node = el("p");
  let i = start;
  for (; i < lines.length && lines[i].trim() && !startsBlock(lines[i]); i += 1) {
    if (i > start) node.append(el("br"));
    renderInline(lines[i], node);
  }
  into.append(node);
  return i;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || ITEM.test(line);
}

function renderInline(text, into) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    into.append(text.slice(last, m.index)); // append(string) makes a text node
    const [, code, bold, bold2, italic, italic2] = m;
    if (code !== undefined) {
      const node = el("code");
      node.textContent = code;
      into.append(node);
    } else {
      const node = el(bold !== undefined || bold2 !== undefined ? "strong" : "em");
      renderInline(bold ?? bold2 ?? italic ?? italic2, node);
      into.append(node);
    }
    last = m.index + m[0].length;
  }
  into.append(text.slice(last));
}

// ---- messages ------------------------------------------------------------------------------------

function renderMessage(message, node) {
  node.replaceChildren();
  node.className = `msg ${message.role}${message === chat.messages.at(-1) && running ? " streaming" : ""}`;
  if (message.role === "user") node.textContent = message.content;
  else renderMarkdown(message.content, node);
  if (message.stopped) node.append(note("stopped"));
  if (message.error) node.append(note(message.error, "error"));
}

function note(text, kind) {
  const node = el("span", `note ${kind || ""}`);
  node.textContent = text;
  return node;
}

function renderChat() {
  const box = $("messages");
  box.replaceChildren(
    ...chat.messages.map((message) => {
      const node = el("div");
      renderMessage(message, node);
      return node;
    }),
  );
  box.scrollTop = box.scrollHeight;
}

function followBottom(update) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  update();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// ---- the API -------------------------------------------------------------------------------------

async function api(path, options = {}) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORE);
    const headers = { ...options.headers };
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    sessionStorage.removeItem(KEY_STORE);
    await askForKey(key ? "That key was refused." : "", options.signal);
  }
}

function askForKey(message, signal) {
  $("key-note").textContent = message;
  $("key-form").hidden = false;
  $("api-key").focus();
  return new Promise((resolve, reject) => {
    keyWaiters.push(resolve);
    signal?.addEventListener("abort", () => reject(new DOMException("stopped", "AbortError")));
  });
}

function useKey(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
  $("api-key").value = "";
  $("key-form").hidden = true;
  const waiters = keyWaiters;
  keyWaiters = [];
  waiters.forEach((resolve) => resolve());
  $("prompt").focus();
}

async function errorText(response) {
  try {
    return (await response.json()).error.message;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// Server-sent events: yields the data of each event ("[DONE]" included).
async function* sseData(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r/g, ""); // JSON escapes \r, so only line ends have it
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((line) => line.startsWith("data:"));
      if (data.length) yield data.map((line) => line.slice(5).replace(/^ /, "")).join("\n");
    }
  }
}

// ---- the model picker ----------------------------------------------------------------------------

// Fills the picker from /v1/models (each model's state changes as it loads), keeping the choice.
async function loadModels() {
  const response = await api("/v1/models");
  if (!response.ok) throw new Error(await errorText(response));
  // The chat page talks to chat models; embedding models and rerankers are for other clients.
  models = (await response.json()).data.filter((card) => (card.kind || "chat") === "chat");
  const picker = $("model");
  const wanted = picker.value || localStorage.getItem(MODEL_STORE);
  picker.replaceChildren(...models.map(modelOption));
  if (models.some((card) => card.id === wanted)) picker.value = wanted; // else the first one
  showModel();
}

function refreshModels() {
  loadModels().catch((error) => {
    $("context").textContent = `(${error.message})`;
  });
}

function modelOption(card) {
  const option = el("option");
  option.value = card.id;
  option.textContent = card.state ? `${card.id} — ${card.state}` : card.id;
  if (card.error) option.title = card.error;
  return option;
}

function showModel() {
  const card = models.find((m) => m.id === $("model").value);
  const context = card?.context_length ?? card?.max_model_len;
  if (card?.error) $("context").textContent = card.error;
  else $("context").textContent = context ? `· ${context.toLocaleString("en")} tokens context` : "";
}

function pickModel() {
  localStorage.setItem(MODEL_STORE, $("model").value);
  showModel();
}

// ---- sending -------------------------------------------------------------------------------------

function requestBody(settings) {
  const history = chat.messages.filter((m) => m.content).map(({ role, content }) => ({ role, content }));
  const messages = settings.system ? [{ role: "system", content: settings.system }, ...history] : history;
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  const model = $("model").value; // a switch mid-chat sends the whole conversation to the new model
  if (model) body.model = model;
  if (Number.isFinite(settings.temperature)) body.temperature = settings.temperature;
  if (settings.maxTokens > 0) body.max_tokens = Math.round(settings.maxTokens);
  return body;
}

async function send(text) {
  const settings = readSettings();
  chat.messages.push({ role: "user", content: text });
  const body = requestBody(settings);
  const reply = { role: "assistant", content: "" };
  chat.messages.push(reply);
  running = new AbortController();
  setRunning(true);
  saveChat();
  renderChat();
  const node = $("messages").lastElementChild;
  const timing = { start: performance.now(), first: null, end: null, chunks: 0, usage: null };
  try {
    await stream(body, reply, node, timing);
  } catch (error) {
    if (error.name === "AbortError") reply.stopped = true;
    else reply.error = error.message;
  } finally {
    timing.end = performance.now();
    running = null;
    setRunning(false);
    saveChat();
    followBottom(() => renderMessage(reply, node));
    if (chat.messages.includes(reply)) showStats(timing); // not after New chat
    refreshModels(); // the answer may have loaded (or unloaded) a model
  }
}

async function stream(body, reply, node, timing) {
  const options = {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: running.signal,
  };
  const response = await api("/v1/chat/completions", options);
  if (!response.ok) throw new Error(await errorText(response));
  let pending = false;
  for await (const data of sseData(response)) {
    if (data === "[DONE]") return;
    const chunk = JSON.parse(data);
    if (chunk.error) throw new Error(chunk.error.message);
    if (chunk.usage) timing.usage = chunk.usage;
    const text = chunk.choices?.[0]?.delta?.content;
    if (!text) continue;
    timing.first ??= performance.now();
    timing.chunks += 1;
    reply.content += text;
    if (!pending) {
      pending = true; // one render per frame, however fast the tokens come
      requestAnimationFrame(() => {
        pending = false;
        followBottom(() => renderMessage(reply, node));
      });
    }
  }
}

function showStats({ start, first, end, chunks, usage }) {
  if (first === null) {
    $("stats").textContent = "";
    return;
  }
  const tokens = usage?.completion_tokens ?? chunks; // no usage chunk when stopped: count the chunks
  const seconds = (end - first) / 1000;
  const rate = tokens > 1 && seconds > 0 ? `${((tokens - 1) / seconds).toFixed(1)} tokens/s` : "";
  const parts = [`TTFT ${Math.round(first - start)} ms`, rate, `${tokens} tokens`];
  $("stats").textContent = `Last answer: ${parts.filter(Boolean).join(" · ")}`;
}

function setRunning(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

function submitPrompt(event) {
  event?.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || running) return;
  $("prompt").value = "";
  send(text);
}

function newChat() {
  running?.abort();
  chat = { messages: [] };
  saveChat();
  renderChat();
  $("stats").textContent = "";
  $("prompt").focus();
}

function onPromptKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) submitPrompt(event);
}

// ---- start ---------------------------------------------------------------------------------------

$("composer").addEventListener("submit", submitPrompt);
$("prompt").addEventListener("keydown", onPromptKey);
$("stop").addEventListener("click", () => running?.abort());
$("new-chat").addEventListener("click", newChat);
$("key-form").addEventListener("submit", useKey);
$("model").addEventListener("change", pickModel);
loadSettings();
renderChat();
refreshModels();
$("prompt").focus();
