// The elig workbench page. Every answer comes from the server (elig's own checker,
// evaluator and report renderer); this script only shows them. Text from the protocol,
// the patient or a diagnostic is always set with textContent, never as HTML; the report
// is shown in a sandboxed frame with scripts disabled.
"use strict";

const DEBOUNCE_MS = 250;
const $ = (id) => document.getElementById(id);
const source = $("source");
const highlight = $("highlight");

const state = {
  file: "protocol.elig",
  text: "",
  tokens: [],
  diagnostics: [],
  protocolId: null,
  seq: 0,
  timer: null,
  maxUpload: 0,
  reportReady: false,
};

// ------------------------------------------------------------------ the editor
function commonPrefix(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function render(text, tokens, diagnostics) {
  // Cut the text at every token and diagnostic boundary; each piece is a span with its classes.
  const cuts = new Set([0, text.length]);
  for (const [s, e] of tokens) { cuts.add(s); cuts.add(e); }
  for (const d of diagnostics) {
    if (d.start !== undefined) { cuts.add(Math.min(d.start, text.length)); cuts.add(Math.min(d.end, text.length)); }
  }
  const points = [...cuts].filter((x) => x >= 0 && x <= text.length).sort((a, b) => a - b);
  const frag = document.createDocumentFragment();
  let t = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i], b = points[i + 1];
    if (a === b) continue;
    while (t < tokens.length && tokens[t][1] <= a) t++;
    const classes = [];
    if (t < tokens.length && tokens[t][0] <= a && tokens[t][1] >= b) classes.push(tokens[t][2]);
    let worst = null;
    for (const d of diagnostics) {
      if (d.start !== undefined && d.start <= a && d.end >= b) {
        if (d.severity === "error") worst = "error";
        else if (!worst) worst = "warning";
      }
    }
    if (worst) classes.push("diag-" + worst);
    const piece = text.slice(a, b);
    if (classes.length) {
      const span = document.createElement("span");
      span.className = classes.join(" ");
      span.textContent = piece;
      if (worst) span.dataset.diagnostic = worst;
      frag.appendChild(span);
    } else {
      frag.appendChild(document.createTextNode(piece));
    }
  }
  frag.appendChild(document.createTextNode("\n"));  // keeps the last line's height equal to the textarea's
  highlight.replaceChildren(frag);
  syncScroll();
}

function syncScroll() {
  highlight.scrollTop = source.scrollTop;
  highlight.scrollLeft = source.scrollLeft;
}

function onInput() {
  const text = source.value;
  // Until the server answers, keep the colours of the unchanged beginning only.
  const keep = commonPrefix(state.text, text);
  state.tokens = state.tokens.filter(([, e]) => e <= keep);
  state.diagnostics = state.diagnostics.filter((d) => d.end !== undefined && d.end <= keep);
  state.text = text;
  render(text, state.tokens, state.diagnostics);
  schedule();
}

function schedule(now) {
  clearTimeout(state.timer);
  state.timer = setTimeout(evaluate, now ? 0 : DEBOUNCE_MS);
}

// ------------------------------------------------------------------ the server
async function evaluate() {
  const seq = ++state.seq;
  const body = { text: source.value, file: state.file, patient: $("patient").value, as_of: $("as-of").value };
  let data;
  try {
    const response = await fetch("/api/evaluate", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    data = await response.json();
    if (!response.ok) {
      if (seq === state.seq) showStatus("data-error", data.error + (data.hint ? " (" + data.hint + ")" : ""));
      return;
    }
  } catch (err) {
    if (seq === state.seq) showStatus("data-error", "the workbench server does not answer: " + err);
    return;
  }
  if (seq !== state.seq || body.text !== source.value) return;  // a newer edit is on its way
  state.tokens = data.tokens;
  state.diagnostics = data.diagnostics;
  state.protocolId = data.protocol_id;
  render(source.value, data.tokens, data.diagnostics);
  showDiagnostics(data.diagnostics);
  showExplanation(data.explanation);
  document.body.dataset.evaluated = String(seq);
}

function showDiagnostics(diagnostics) {
  const list = $("diagnostics");
  list.replaceChildren();
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  $("diagnostics-summary").textContent = diagnostics.length
    ? `${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}`
    : "No problems: elig check and elig lint are satisfied";
  for (const d of diagnostics) {
    const li = document.createElement("li");
    li.className = d.severity;
    li.dataset.code = d.code;
    if (d.line) { li.dataset.line = d.line; li.dataset.column = d.column; }
    const where = document.createElement("span");
    where.className = "where";
    if (d.line && d.file && d.file !== state.file) where.textContent = `${d.file}:${d.line}:${d.column}: `;  // a vocabulary file
    else where.textContent = d.line ? `line ${d.line}, column ${d.column}: ` : (d.location ? d.location + ": " : "");
    const code = document.createElement("span");
    code.className = "code";
    code.textContent = `${d.severity}[${d.code}] `;
    const message = document.createElement("span");
    message.className = "message";
    message.textContent = d.message;
    li.append(where, code, message);
    if (d.hint) {
      const hint = document.createElement("div");
      hint.className = "hint";
      hint.textContent = "help: " + d.hint;
      li.appendChild(hint);
    }
    for (const fix of d.fixes || []) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "fix";
      button.textContent = fix.title;
      button.addEventListener("click", (ev) => { ev.stopPropagation(); applyFix(fix); });
      li.appendChild(button);
    }
    if (d.start !== undefined) {
      li.title = "select it in the text";
      li.addEventListener("click", () => { source.focus(); source.setSelectionRange(d.start, d.end); });
    }
    list.appendChild(li);
  }
}

function applyFix(fix) {
  // The edits are offsets into the text the server checked, which is the text in the editor
  // (an answer to an older text is never shown); apply them from the end backwards.
  const edits = [...fix.edits].sort((a, b) => b.start - a.start);
  for (const e of edits) source.setRangeText(e.text, e.start, e.end, "end");
  source.focus();
  onInput();
}

function showStatus(kind, message) {
  const v = $("verdict");
  v.className = "verdict " + kind;
  v.textContent = message;
}

function showExplanation(e) {
  const derived = $("derived"), changes = $("changes");
  derived.replaceChildren();
  changes.replaceChildren();
  state.reportReady = e.status === "ok";
  $("download-report").disabled = !state.reportReady;
  if (e.status !== "ok") {
    showStatus(e.status, e.message);
    $("report").srcdoc = "";
    return;
  }
  showStatus(e.verdict, `${e.verdict.toUpperCase()} — ${e.patient}, on ${e.as_of}`);
  for (const d of e.derived) {
    const li = document.createElement("li");
    li.dataset.concept = d.concept;
    const head = document.createElement("span");
    head.className = "derived-value";
    head.textContent = `${d.criterion}: ${d.concept} (${d.method}) = ${d.text}`;
    const working = document.createElement("div");
    working.className = "muted rule";
    working.textContent = d.substituted;
    li.append(head, working);
    derived.appendChild(li);
  }
  if (!e.derived.length) derived.appendChild(note("no derived value in this protocol"));
  for (const lever of e.changes) {
    const li = document.createElement("li");
    li.dataset.criteria = lever.criteria.join(" ");
    li.dataset.kind = lever.kind;
    if (lever.excludes) li.className = "excludes";
    const who = document.createElement("strong");
    who.textContent = lever.kind === "collect" ? "collect: " : lever.criteria.join(", ") + ": ";
    li.appendChild(who);
    if (lever.kind === "threshold") {
      const rule = document.createElement("span");
      rule.className = "rule";
      rule.textContent = lever.rule + " — ";
      li.appendChild(rule);
    }
    li.appendChild(document.createTextNode(lever.text));
    changes.appendChild(li);
  }
  if (!e.changes.length) changes.appendChild(note("nothing in the data would change the verdict"));
  $("report").srcdoc = e.report_html;
}

function note(text) {
  const li = document.createElement("li");
  li.className = "muted";
  li.textContent = text;
  return li;
}

// ------------------------------------------------------------------ patients and downloads
function addPatient(p, select) {
  const option = document.createElement("option");
  option.value = p.id;
  option.textContent = p.label;
  $("patient").appendChild(option);
  if (select) $("patient").value = p.id;
}

async function upload() {
  const file = $("upload").files[0];
  const status = $("upload-status");
  if (!file) return;
  if (file.size > state.maxUpload) {
    status.textContent = `${file.name} is larger than ${Math.round(state.maxUpload / 1048576)} MB: upload one patient's record`;
    return;
  }
  status.textContent = `reading ${file.name}…`;
  const response = await fetch("/api/upload", { method: "POST", headers: { "X-Filename": file.name }, body: file });
  const data = await response.json();
  if (!response.ok) {
    status.textContent = data.error + (data.hint ? " (" + data.hint + ")" : "");
    return;
  }
  status.textContent = `${file.name} read; it is kept in memory only, until the workbench stops`;
  addPatient(data, true);
  schedule(true);
}

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

async function downloadReport() {
  const body = { text: source.value, file: state.file, patient: $("patient").value, as_of: $("as-of").value };
  const response = await fetch("/api/report", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    const data = await response.json();
    showStatus("data-error", data.error);
    return;
  }
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  save(await response.blob(), match ? match[1] : "report.html");
}

// ------------------------------------------------------------------ start
async function start() {
  const data = await (await fetch("/api/state")).json();
  state.file = data.file;
  state.maxUpload = data.max_upload_bytes;
  $("file-name").textContent = data.file;
  $("as-of").value = data.as_of;
  for (const p of data.patients) addPatient(p, false);
  source.value = data.text;
  source.addEventListener("input", onInput);
  source.addEventListener("scroll", syncScroll);
  source.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) {  // indent with spaces, as elig wants
      ev.preventDefault();
      source.setRangeText("  ", source.selectionStart, source.selectionEnd, "end");
      onInput();
    }
  });
  $("patient").addEventListener("change", () => schedule(true));
  $("as-of").addEventListener("change", () => schedule(true));
  $("upload").addEventListener("change", upload);
  $("download-elig").addEventListener("click", () =>
    save(new Blob([source.value], { type: "text/plain;charset=utf-8" }), (state.protocolId || "protocol") + ".elig"));
  $("download-report").addEventListener("click", downloadReport);
  onInput();
  schedule(true);
}

start();
