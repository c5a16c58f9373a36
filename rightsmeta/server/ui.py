"""The creators' page served at ``/``: drop files, choose what AI may do, download them tagged.

One self-contained page (no CDN, no external font, no framework): it talks to the same endpoints
as any client (/v1/read, /v1/batches, /v1/verify, /healthz). Files are uploaded two at a time
into a batch on the server, so one failure does not stop the rest; each tagged file and the zip of
all of them are downloaded by plain links, streamed by the server (rightsmeta/server/batches.py),
so the browser never holds the set in memory. The bearer token comes from the address's
fragment (``#token=...``, which browsers never send to a server), as ``rightsmeta ui`` opens it.
"""

from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>rightsmeta: say what AI may do with your work</title><link rel="icon" href="data:,">
<style>
:root{--fg:#111;--bg:#fff;--muted:#444;--accent:#0b4f9c;--bad:#a4001a;--good:#0a5d1f;--line:#767676}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0}
main{max-width:56rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0}
[role=tablist]{display:flex;gap:.5rem;margin:1rem 0;border-bottom:2px solid var(--line)}
[role=tab]{font:inherit;padding:.5rem 1rem;border:2px solid var(--line);border-bottom:none;background:#f2f2f2;color:var(--fg);cursor:pointer}
[role=tab][aria-selected=true]{background:var(--accent);color:#fff;border-color:var(--accent)}
button,.button{font:inherit;padding:.5rem 1rem;border:2px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer;border-radius:4px;text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}
button:disabled{background:#d9d9d9;border-color:#767676;color:#111;cursor:not-allowed}
:focus-visible{outline:3px solid #e36209;outline-offset:2px}
fieldset{border:1px solid var(--line);margin:1rem 0;padding:.5rem 1rem}
legend{font-weight:600}
.verdict{border-top:1px solid var(--line);margin-top:.5rem}.verdict-file{font-weight:600}
label{display:block;margin:.25rem 0}
input[type=text],input[type=url],input[type=password],select{font:inherit;width:100%;max-width:30rem;padding:.35rem;border:1px solid var(--line);color:var(--fg);background:#fff}
.drop{border:2px dashed var(--line);padding:1rem;margin:1rem 0;text-align:center}
.drop.over{background:#eef4fb}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border-bottom:1px solid #bbb;padding:.35rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
td:first-child{overflow-wrap:anywhere;min-width:10rem}
/* At phone width each file is a block of labelled lines: four columns would break words mid-way. */
@media (max-width:40rem){
  #list thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
  #list tr{display:block;border-bottom:1px solid #bbb;padding:.35rem 0}
  #list td{display:block;border:none;padding:.1rem .35rem;min-width:0;overflow-wrap:anywhere}
  #list td::before{content:attr(data-label) ": ";font-weight:600}
}
.bad{color:var(--bad)}.good{color:var(--good)}.muted{color:var(--muted)}
button.remove{padding:0 .5rem;margin-left:.5rem;font-size:.9rem}
/* A file's download link is its own target, not a word in a sentence: 24 px at least, for a thumb (WCAG 2.5.8). */
#list a[download]{display:inline-block;padding:.25rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));gap:.5rem 1rem}
[hidden]{display:none!important}
</style></head>
<body><main>
<h1>Say what AI may do with your work</h1>
<p class="muted">Your files are tagged on this computer: they go to the rightsmeta server you started and come straight back.</p>
<div role="tablist" aria-label="What to do">
  <button role="tab" id="tab-tag" aria-selected="true" aria-controls="view-tag">Tag files</button>
  <button role="tab" id="tab-check" aria-selected="false" aria-controls="view-check" tabindex="-1">Check files</button>
</div>

<section id="view-tag" role="tabpanel" aria-labelledby="tab-tag">
  <p id="signing" class="muted" aria-live="polite">Checking the server...</p>
  <p id="make-identity-box" hidden><button id="make-identity" class="secondary">Create a signing identity</button>
    <span class="muted">(uses the name below, if you give one)</span></p>
  <div class="drop" id="drop" role="region" aria-label="Drop files here">
    <p>Drop files or a folder here, or choose them:</p>
    <label for="files">Choose files</label>
    <input type="file" id="files" multiple>
    <label for="folder">Choose a folder</label>
    <input type="file" id="folder" webkitdirectory multiple>
  </div>
  <table id="list" hidden><caption class="muted">Your files</caption>
    <thead><tr><th scope="col">File</th><th scope="col">Type</th><th scope="col">What it says now</th><th scope="col">Result</th></tr></thead>
    <tbody></tbody></table>
  <p id="count" class="muted"></p>

  <fieldset><legend>What may AI do with these files?</legend>
    <label><input type="radio" name="preset" value="no-training" checked> No AI training</label>
    <label><input type="radio" name="preset" value="no-ai"> No AI at all: training and inference</label>
    <label><input type="radio" name="preset" value="licence"> Allowed under my licence</label>
    <label><input type="radio" name="preset" value="no-genai"> Everything except generative AI</label>
    <label><input type="radio" name="preset" value="custom"> Let me choose for each use</label>
    <div id="licence-box" hidden><label for="licence">Web address of your licence</label>
      <input type="url" id="licence" placeholder="https://example.com/ai-licence" aria-describedby="licence-error">
      <p id="licence-error" class="bad" role="alert"></p></div>
    <div class="grid" id="purposes"></div>
  </fieldset>

  <fieldset><legend>About you (optional)</legend><div class="grid">
    <div><label for="holder">Your name</label><input type="text" id="holder" autocomplete="name"></div>
    <div><label for="contact">How to contact you (web address or e-mail)</label><input type="text" id="contact"></div>
    <div><label for="copyright">Copyright notice</label><input type="text" id="copyright" placeholder="(c) 2026 Your Name"></div>
    <div><label for="web">Web page with your terms</label><input type="url" id="web"></div>
  </div></fieldset>
  <div id="token-box" hidden><label for="token">Access token of this server</label><input type="password" id="token" autocomplete="off"></div>
  <p><button id="go" disabled>Tag files</button> <a id="zip" class="button secondary" href="#" download="tagged.zip" hidden>Download all (zip)</a></p>
  <p id="progress" class="muted"></p>
  <p id="summary" role="status" aria-live="polite"></p>
  <div id="next" hidden><p id="next-why" aria-live="polite"></p><p><button id="next-go"></button> <span id="next-wait" class="muted"></span></p></div>
</section>

<section id="view-check" role="tabpanel" aria-labelledby="tab-check" hidden>
  <div class="drop" id="check-drop" role="region" aria-label="Drop files to check here">
    <p>Drop files here, or choose them:</p>
    <label for="check-file">Select files to check</label>
    <input type="file" id="check-file" multiple>
  </div>
  <p id="check-summary" role="status" aria-live="polite"></p>
  <div id="verdict"></div>
</section>
</main>
<script>
"use strict";
const PURPOSES = [["data-mining","Text and data mining"],["ai-training","Training AI models"],
  ["genai-training","Training generative AI"],["ai-inference","Use as input to AI (inference, RAG)"],["search","Search engine indexing"]];
const STATES = [["unspecified","Not stated"],["allowed","Allowed"],["notAllowed","Not allowed"],["constrained","Allowed under my licence"]];
const PRESETS = {
  "no-training": {"ai-training":"notAllowed","genai-training":"notAllowed"},
  "no-ai": {"ai-training":"notAllowed","genai-training":"notAllowed","ai-inference":"notAllowed"},
  "licence": {"ai-training":"constrained","genai-training":"constrained","ai-inference":"constrained"},
  "no-genai": {"data-mining":"allowed","ai-training":"allowed","genai-training":"notAllowed","ai-inference":"allowed","search":"allowed"}};
const STATUS_WORDS = {intact:"Intact: the statement is there and consistent", partial:"Partly there: some places lost it",
  conflicting:"Conflicting: places disagree", tampered:"Tampered: the signed credential was changed",
  stripped:"Stripped: the statement was removed, but this is a known work", untagged:"No statement found",
  unreadable:"Could not be read"};
// Where a statement sits, in words a creator knows; the technical name stays in brackets, to look it up.
const CARRIER_WORDS = {xmp: "the file's embedded metadata (XMP)", exif: "the camera's fields in the file (Exif)",
  c2pa: "the file's signed credentials (C2PA)", info: "the PDF's document information", opf: "the e-book's package information",
  id3: "the MP3's tags (ID3)", vorbis: "the audio tags (Vorbis comments)", mp4: "the MP4 / M4A tags", "mp4-keys": "the MP4 / M4A tags",
  "xmp-sidecar": "a metadata file kept beside it (XMP sidecar)"};
function carrierWords(name) {
  const base = name.split(" (")[0];  // "xmp (packet 2)": a second XMP packet
  return CARRIER_WORDS[base] || (base.endsWith("-copyright") ? "the copyright field of " +
    (CARRIER_WORDS[base.slice(0, -10)] || base.slice(0, -10)) : name);
}
const STATE_WORDS = Object.fromEntries(STATES);
const purposeWords = (key) => { const found = PURPOSES.find(([k]) => k === key); return found ? found[1].toLowerCase() : key; };
// The verifier's reasons are written for developers ("signals in c2pa, xmp"): each known kind is said in
// plain words here, the server's own text kept under "Technical details". Unknown ones are shown as sent.
const PLAIN = [
  [/^signals in (.+)$/, (m) => "The statement was found in: " + m[1].split(", ").map(carrierWords).join(", ") + "."],
  [/^only in a sidecar/, () => "It is only in a separate file kept beside this one: a copy of this file alone says nothing."],
  [/^missing: xmp \(the rightsmeta manifest is there/, () => "The signed credentials are there, but the embedded metadata " +
    "(XMP) written with them was removed: a program that edited the file may have dropped it."],
  [/^missing: (.+) \(recorded in the ledger\)$/, (m) => `When it was tagged here it was also in ${carrierWords(m[1])}; ` +
    "that is gone now, so the file was changed since."],
  [/^missing: .+ in (\S+)$/, (m) => `Part of the statement is missing from ${carrierWords(m[1])}: a program that edited ` +
    "the file may have dropped it."],
  [/^C2PA manifest invalid/, () => "The file's signed credentials (C2PA) no longer match it: it was changed after it was " +
    "signed, or the signature is damaged."],
  [/^no signal left, but it matches/, () => "No statement is left in the file, but it is a copy of a work in your records " +
    "(the ledger): what was said for that work applies."],
  [/^no rights signal found$/, () => "No statement about AI use was found in the file."],
  [/^only an exact copy is recognised/, () => "Only an identical copy of a work in your records could have been recognised, " +
    "not an edited one: this file's picture or sound could not be compared."],
  [/^content not matched against the ledger/, () => "Its content could not be compared with your records (the ledger), " +
    "so it is not known whether it is one of your works."],
  [/^([a-z-]+): (.+ says .+)$/, (m) => `Places in the file disagree about ${purposeWords(m[1])}: ` + m[2].split(", ").map((part) => {
    const [where, state] = part.split(" says "); return `${carrierWords(where)} says \u201c${STATE_WORDS[state] || state}\u201d`; })
    .join(", ") + "."],
  [/^(\S+) \(.*\) differs from the rightsmeta record/, (m) => `${carrierWords(m[1])} says something else than the ` +
    "statement rightsmeta wrote; the place that takes precedence was followed."],
];
// Why a file was not read or tagged, as the reader says it: "truncated PNG: b'IDAT' chunk at offset 33 claims
// 365 bytes...", "not a readable PDF (PdfStreamError: ...)". A creator is told what it means for them.
const DAMAGED = [
  [/^not a format rightsmeta knows/, () => "rightsmeta does not know this kind of file (it tags pictures, PDFs, e-books, " +
    "audio and video)"],
  [/^truncated ([A-Za-z0-9]+)/, (m) => `the file is cut short (an incomplete ${m[1]}): it may not have finished copying ` +
    "or downloading"],
  [/^XMP cannot be written into (\w+) files.*signed C2PA manifest/, (m) => `${m[1]} files can hold the statement only in ` +
    "signed credentials (C2PA)"],
  [/^(?:not a readable|malformed|damaged|invalid) ([A-Za-z0-9]+)/i, (m) => `the file is damaged: it could not be read as ${m[1]}`],
  [/^(JPEG|PNG|TIFF|WebP|GIF|PDF|MP3|MP4|FLAC|WAV|OGG|EPUB|HEIC|AVIF)\b[^:]*: /, (m) => `the file is damaged: it could not be read as ${m[1]}`],
];
function plainProblem(text) {
  for (const [pattern, words] of DAMAGED) { const m = text.match(pattern); if (m) return words(m); }
  return text;
}
function plainReason(reason) {
  for (const [pattern, words] of PLAIN) { const m = reason.match(pattern); if (m) return words(m); }
  const plain = plainProblem(reason);
  return plain === reason ? reason : plain[0].toUpperCase() + plain.slice(1) + ".";
}
// A plain sentence, with the reader's own words one click away when they differ (to look up or report).
function explained(node, plain, raw) {
  node.textContent = plain;
  if (plain === raw) return;
  const more = document.createElement("details"), title = document.createElement("summary"), text = document.createElement("p");
  title.textContent = "Technical details"; text.textContent = raw; more.append(title, text); node.appendChild(more);
}
const $ = (id) => document.getElementById(id);
const items = [];
let maxUpload = Infinity;  // the server's upload limit (/healthz), so a file past it is refused here, unsent
let running = false;  // a run is going: files added meanwhile must not re-enable "Tag files"
let serverInfo = {};  // the server's last /healthz answer: does it sign, could it make an identity

// What a creator is told when fetch itself fails: the server was stopped (Ctrl-C, a closed terminal) or is gone.
// `rightsmeta ui` starts on a new port with a new token, so this page cannot be used again: the new one can.
const UNREACHABLE = "the rightsmeta server cannot be reached (was it stopped?)";
const AGAIN = "Start it again (rightsmeta ui) and use the page it opens. Your own files are unchanged.";
// One request to the server: its JSON answer, or an Error in words (never "Failed to fetch" or a JSON
// parser's complaint about a proxy's HTML page). err.unreachable tells a stopped server from a refusal.
async function ask(url, options) {
  let r;
  try { r = await fetch(url, options); } catch (e) { throw Object.assign(new Error(UNREACHABLE), {unreachable: true}); }
  let body;
  try { body = await r.json(); } catch (e) {
    if (r.ok) throw Object.assign(new Error("the server's answer was cut off: " + UNREACHABLE), {unreachable: true});
    body = {detail: `the server answered ${r.status} ${r.statusText}`.trim()};
  }
  // "send 'Authorization: Bearer <token>'" is for programs; a creator is told which token and where it goes.
  if (r.status === 401) body = {...body, detail: (auth().Authorization ? "the access token given is not this server's"
    : "this server asks for its access token") + ": paste it in \u201cAccess token of this server\u201d below, " +
    "or use the page rightsmeta ui opens (its address holds the token)"};
  return {r, body};
}
const megabytes = (n) => (n / 1048576).toFixed(1) + " MB";
// A list of small files weighed "0.0 MB".
const weight = (n) => n < 1048576 ? Math.max(n && 1, Math.round(n / 1024)) + " KB" : megabytes(n);
// Files the server would refuse anyway, said here with the file's own size and without sending it.
function refusal(file) {
  if (file.size === 0) return "this file is empty (0 bytes): there is nothing in it";
  if (file.size > maxUpload) return `this file is too large (${megabytes(file.size)}); this server takes files up to ` +
    `${megabytes(maxUpload)} (rightsmeta serve --max-upload-mb)`;
  return "";
}
let token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
if (!token) $("token-box").hidden = false;

for (const [key, words] of PURPOSES) {
  const div = document.createElement("div");
  div.innerHTML = `<label for="p-${key}">${words}</label><select id="p-${key}">` +
    STATES.map(([v, w]) => `<option value="${v}">${w}</option>`).join("") + "</select>";
  $("purposes").appendChild(div);
  div.querySelector("select").addEventListener("change", () => { document.querySelector("input[value=custom]").checked = true; syncLicence(); });
}
// "Allowed under my licence" means nothing without the licence: its address is asked for whenever a use says so.
const needsLicence = () => PURPOSES.some(([key]) => $("p-" + key).value === "constrained");
function syncLicence() { $("licence-box").hidden = !needsLicence(); }
function applyPreset() {
  const preset = document.querySelector("input[name=preset]:checked").value;
  if (preset !== "custom") for (const [key] of PURPOSES) $("p-" + key).value = PRESETS[preset][key] || "unspecified";
  syncLicence();
}
function licenceMissing() {
  const field = $("licence"), value = field.value.trim();
  const bad = needsLicence() && (!value || !field.checkValidity());
  $("licence-error").textContent = bad ? (value ? "This is not a web address; it starts with https://" :
    "Give the web address of your licence, so people know the terms.") : "";
  field.setAttribute("aria-invalid", bad ? "true" : "false");
  if (bad) field.focus();
  return bad;
}
document.querySelectorAll("input[name=preset]").forEach((r) => r.addEventListener("change", applyPreset));
applyPreset();

function tabs(which) {
  for (const name of ["tag", "check"]) {
    const on = name === which;
    $("tab-" + name).setAttribute("aria-selected", on); $("tab-" + name).tabIndex = on ? 0 : -1;
    $("view-" + name).hidden = !on;
  }
}
$("tab-tag").onclick = () => tabs("tag"); $("tab-check").onclick = () => tabs("check");
document.querySelector("[role=tablist]").addEventListener("keydown", (e) => {
  const next = e.key === "Home" ? "tag" : e.key === "End" ? "check" : (e.key === "ArrowRight" || e.key === "ArrowLeft")
    ? ($("tab-tag").getAttribute("aria-selected") === "true" ? "check" : "tag") : null;
  if (next) { e.preventDefault(); tabs(next); $("tab-" + next).focus(); }
});

function summary(perms) {
  const lower = (w) => w[0].toLowerCase() + w.slice(1);  // "Training AI models" -> "training AI models"
  const not = PURPOSES.filter(([k]) => perms[k] === "notAllowed").map(([, w]) => lower(w));
  const lic = PURPOSES.filter(([k]) => perms[k] === "constrained").map(([, w]) => lower(w));
  const parts = [];
  if (not.length) parts.push("Not allowed: " + not.join(", "));
  if (lic.length) parts.push("Under licence: " + lic.join(", "));
  return parts.join(". ") || "Nothing stated";
}
// How many files are listed and how much they weigh, and how many the server would refuse anyway.
function counted() {
  const size = items.reduce((sum, item) => sum + item.file.size, 0), refused = items.filter((item) => refusal(item.file)).length;
  $("count").textContent = !items.length ? "" : `${items.length} file${items.length === 1 ? "" : "s"} (${weight(size)}).` +
    (refused ? ` ${refused} cannot be tagged (empty or too large).` : "");
  $("list").hidden = items.length === 0;
  $("go").disabled = running || items.length === 0;
}
// A wrong file taken off the list (a reload lost every choice). Focus goes on to the next file's button,
// so a keyboard or screen-reader user carries on where they were.
function remove(item) {
  const at = items.indexOf(item);
  if (at < 0 || running) return;
  items.splice(at, 1); item.row.remove();
  const near = items[at] || items[at - 1];
  (near ? near.row.querySelector("button.remove") : $("files")).focus();
  let said = `Removed ${item.name}. ${items.length} file${items.length === 1 ? " is" : "s are"} left.`;
  // The zip made before still holds a tagged file taken off the list: it is not offered as "all" of them.
  if (item.tagged) { cut = true; $("zip").hidden = true; said += " Press Tag files again for a zip of the files listed."; }
  $("summary").textContent = said;
  counted(); nextStep();
}
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }

// Whether two files hold the same bytes, read a piece at a time (only asked of two of one name and size).
async function sameBytes(a, b) {
  if (a.size !== b.size) return false;
  for (let at = 0; at < a.size; at += 1 << 20) {
    const [x, y] = await Promise.all([a, b].map((f) => f.slice(at, at + (1 << 20)).arrayBuffer().then((d) => new Uint8Array(d))));
    if (x.some((v, n) => v !== y[n])) return false;
  }
  return true;
}
// Files are read (what they say now) this many at a time, once all are listed: one after the other, each row
// appearing only once the file before it was read, 500 small files took 26 s to list (bench/ui.py --page-add).
const READ_AT_ONCE = 4;
async function addFiles(files) {
  const again = [], unread = [];
  const named = new Map();  // name -> items, so a large list is not searched once per file added
  for (const item of items) named.set(item.name, [...(named.get(item.name) || []), item]);
  for (const file of files) {
    // Its place in a chosen or dropped folder (kept in the zip); hidden files and folders are left out.
    const name = file.relativePath || file.webkitRelativePath || file.name;
    // A file chosen by itself is kept whatever its name: leaving it out said nothing at all.
    if (name.includes("/") && name.split("/").some((part) => part.startsWith("."))) continue;
    // The same file chosen again was listed, tagged and zipped twice ("a-2.png"); another file of its name is kept.
    let listed = false;
    for (const item of named.get(name) || []) if (await sameBytes(item.file, file)) { listed = true; break; }
    if (listed) { again.push(name); continue; }
    const row = document.createElement("tr");
    const item = {file, name, row};
    row.append(cell(name), cell("..."), cell("..."), cell("waiting", "muted"));
    ["File", "Type", "What it says now", "Result"].forEach((label, n) => { row.cells[n].dataset.label = label; });
    const off = document.createElement("button");
    off.className = "remove secondary"; off.textContent = "Remove"; off.setAttribute("aria-label", "Remove " + name);
    off.disabled = running; off.addEventListener("click", () => remove(item)); row.cells[0].append(" ", off);
    $("list").tBodies[0].appendChild(row); items.push(item); named.set(name, [...(named.get(name) || []), item]);
    // After a run nothing waits: it said "waiting" beside a "Download all" that does not hold this file.
    if (batch && !running) {
      row.cells[3].textContent = "Not tagged yet"; added++;
      $("summary").textContent = `${added} file${added === 1 ? "" : "s"} added since the run: press Tag files to tag ` +
        `${added === 1 ? "it" : "them"}. The zip holds only the files tagged before until then.`;
    }
    const refused = refusal(file);
    if (refused) { row.cells[1].textContent = "-"; row.cells[2].textContent = "Not read: " + refused; row.cells[2].className = "bad"; continue; }
    unread.push(item);
  }
  counted();
  if (again.length) $("summary").textContent = again.length === 1 ? `${again[0]} is in the list already: it was not added again.`
    : `${again.length} files are in the list already: they were not added again.`;
  let next = 0;
  const reader = async () => { while (next < unread.length) await readOne(unread[next++]); };
  await Promise.all(Array.from({length: READ_AT_ONCE}, reader));
}
// What one listed file says now, in its row.
async function readOne({file, row}) {
  if (!row.isConnected) return;  // removed from the list before its turn
  try {
    const {r, body} = await ask("/v1/read", {method: "POST", body: file, headers: auth()});
    const report = r.ok ? body : (body.report || {});
    // 422 is "not a format we know"; other refusals (a limit, the token) say nothing about the file's type.
    row.cells[1].textContent = (report.format || (r.status === 422 ? "not a supported file" : "-")).toUpperCase();
    if (r.ok) row.cells[2].textContent = summary(report.permissions || {});
    else explained(row.cells[2], plainProblem(body.detail || "could not be read"), body.detail || "could not be read");
    // Said, not hidden: a damaged file's "nothing stated" may only mean its statement could not be reached.
    if (r.ok && (report.errors || []).length) {
      // Nothing found in a file not read whole is not "Nothing stated" (that reads as free to use).
      const said = row.cells[2].textContent === "Nothing stated" ? "Not known" : row.cells[2].textContent;
      explained(row.cells[2], said + ". Could not be read fully: " + report.errors.map(plainProblem).join("; "),
        said + ". Could not be read fully: " + report.errors.join("; ")); row.cells[2].className = "bad";
    }
  } catch (e) { row.cells[1].textContent = "-"; row.cells[2].textContent = "Not read: " + e.message; row.cells[2].className = "bad"; }
}
function auth() { const t = token || $("token").value.trim(); return t ? {"Authorization": "Bearer " + t} : {}; }
// The field is emptied once its files are taken: choosing the file it held (one removed from the list) did nothing.
const take = (use) => (e) => { const chosen = [...e.target.files]; e.target.value = ""; use(chosen); };
$("files").addEventListener("change", take(addFiles));
$("folder").addEventListener("change", take(addFiles));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
// A dropped folder arrives as one entry: walk it (readEntries answers in pieces, so read until empty).
async function dropped(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, no) => entry.file(ok, no));
    file.relativePath = entry.fullPath.replace(/^\/+/, "");  // a dropped file's webkitRelativePath is empty
    out.push(file); return;
  }
  const reader = entry.createReader();
  for (;;) {
    const some = await new Promise((ok, no) => reader.readEntries(ok, no));
    if (!some.length) return;
    for (const child of some) await dropped(child, out);
  }
}
// The files of a drop. Called before any await: a drop's items are gone once its handler has returned.
async function droppedFiles(data) {
  const entries = [...data.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...data.files];
  const files = [];
  for (const entry of entries) { try { await dropped(entry, files); } catch (err) { /* unreadable entry: skipped */ } }
  return files;
}
drop.addEventListener("drop", async (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(await droppedFiles(e.dataTransfer)); });
// A file dropped beside the drop area was opened by the browser in place of this page, and the list was
// lost with it. Anywhere on the page, a drop goes to the view shown (the drop areas take theirs first).
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", async (e) => {
  if (e.defaultPrevented) return;
  e.preventDefault();
  const files = await droppedFiles(e.dataTransfer);
  if ($("view-check").hidden) addFiles(files); else checkAll(files);
});

function assertion() {
  const permissions = {};
  const licence = $("licence").value.trim();
  for (const [key] of PURPOSES) {
    const state = $("p-" + key).value;
    if (state === "constrained") permissions[key] = {state, constraint_info: licence};
    else if (state !== "unspecified") permissions[key] = state;
  }
  const out = {permissions};
  if ($("holder").value.trim()) out.holder = {name: $("holder").value.trim(), contact: $("contact").value.trim() || null};
  if ($("copyright").value.trim()) out.copyright = $("copyright").value.trim();
  if ($("web").value.trim()) out.web_statement = $("web").value.trim();
  return out;
}

// Tagging goes through a batch on the server: each tagged file stays there, and the zip of all of
// them is written by the server while the browser saves it, so no side holds the whole set.
let batch = null;
let added = 0;  // files added since the last run
const AT_ONCE = 2;
// GIF, HEIC, AVIF and SVG take the statement only in a signed credential: say how to get one, here.
function signingHint(why) {
  if (serverInfo.signing || !/signed C2PA manifest/.test(why)) return "";
  return serverInfo.can_make_identity ? ". Press \u201cCreate a signing identity\u201d above, then Tag files again."
    : ". This server has no signing identity (rightsmeta keys init makes one).";
}
function fail(item, why, hint = "") {
  const status = item.row.cells[3]; explained(status, "Failed: " + plainProblem(why) + hint, "Failed: " + why + hint); status.className = "bad";
}
// Leaving the page during a run loses it: the files being sent and the links to those tagged so far. After
// one, leaving deletes the batch: tagged copies not downloaded went without a word, and so did a list not tagged yet.
const unsaved = () => running || items.some((item) => item.tagged ? !item.saved : !item.tried);
window.addEventListener("beforeunload", (e) => { if (unsaved()) { e.preventDefault(); e.returnValue = ""; } });
// Once the page is left nobody can reach its batch (the id lived here), yet the server kept it an hour:
// its disk, and one of its 32 batches (a creator reloading the page met "Too many batches"). A download
// still running goes on: the server removes a deleted batch's files when its last download ends.
window.addEventListener("pagehide", () => {
  if (batch) fetch(batch.url, {method: "DELETE", headers: auth(), keepalive: true}).catch(() => {});
});
async function start(fresh) {
  if (licenceMissing()) return;
  running = true; $("go").disabled = true; $("zip").hidden = true; $("next").hidden = true; limit = null; added = 0; stopWaiting();
  for (const b of document.querySelectorAll("#list button.remove")) b.disabled = true;
  try { await run(fresh); } finally {
    running = false; $("go").disabled = items.length === 0;
    // The button disabled during the run lost the focus to the page's body (a screen reader starts again at the top).
    if (document.activeElement === document.body && !$("go").disabled) $("go").focus();
    for (const b of document.querySelectorAll("#list button.remove")) b.disabled = false;
    nextStep();
  }
}
$("go").addEventListener("click", () => start(false));
// Copies tagged before a choice changed say the earlier one: "Download all" was still offered, and saved that.
for (const field of document.querySelectorAll("fieldset")) field.addEventListener("change", () => {
  if (running || !items.some((item) => item.tagged)) return;
  $("zip").hidden = true;
  $("summary").textContent = "The choices changed after tagging: the tagged copies say what was chosen before. " +
    "Press Tag files again to tag them with these.";
});
// The server's batch limits (files in one batch, disk for all of them, the number of batches) end a run
// with files left over. What was done is kept for download, and one button goes on with the rest.
let limit = null;  // {why, retry}: why the server took no more; retry when no batch could be made at all
// A 413 is also one file too large, and a 503 a busy server: those are that file's failure, the run goes on.
const batchFull = (e) => e.status === 507 || (e.status === 413 && e.title === "Batch full");
function nextStep() {
  const left = items.filter((item) => !item.tagged).length, done = items.length - left;
  $("next").hidden = !limit || !left;
  if ($("next").hidden) { stopWaiting(); return; }
  if (limit.retry) {
    // The server says when to ask again (Retry-After): the page does, once, by itself; the button stays.
    const alone = limit.after > 0 && !retried;
    $("next-why").textContent = `The server cannot start a batch for these files now: ${limit.why}. Batches are removed ` +
      "when their page is closed, or after an hour unused. " + (alone ? `This page tries again by itself in ${limit.after} ` +
      "seconds, or press Try again." : "Try again in a minute.");
    $("next-go").textContent = "Try again";
    if (alone && !waiting) countdown(limit.after);
    return;
  }
  $("next-why").textContent = `The server took no more files in this batch: ${limit.why}. ` + (done ? `Download the ${done} ` +
    `tagged file${done === 1 ? "" : "s"} (Download all), then tag the rest in a new batch: the tagged files leave this list and the server.` :
    "Tag them again in a new batch.");
  $("next-go").textContent = `Tag the ${left} file${left === 1 ? "" : "s"} left`;
}
// The seconds left before the page tries again by itself, out of the live region (read once, not every second).
let waiting = null, retried = false;
function countdown(left) {
  clearTimeout(waiting);
  $("next-wait").textContent = `Trying again in ${left} s.`;
  waiting = setTimeout(() => { if (left > 1) countdown(left - 1); else { retried = true; goOn(); } }, 1000);
}
function stopWaiting() { clearTimeout(waiting); waiting = null; $("next-wait").textContent = ""; }
$("next-go").addEventListener("click", () => goOn());
async function goOn() {
  stopWaiting();
  if (running) return;
  const unsaved = items.filter((item) => item.tagged && !item.saved).length;
  if (unsaved && !limit.retry) {
    // Going on deletes this batch: tagged copies not saved yet would be lost, and the creator would not know.
    $("next-why").textContent = `Download the ${unsaved} tagged file${unsaved === 1 ? "" : "s"} first (Download all): ` +
      "going on removes them from the server.";
    $("zip").focus(); return;
  }
  for (const item of items.filter((item) => item.tagged)) { item.row.remove(); }
  items.splice(0, items.length, ...items.filter((item) => !item.tagged));
  counted();
  const pressed = [$("next-go"), document.body].includes(document.activeElement);
  await start(true);
  // The button pressed is gone or renamed: focus goes where the creator's next step is. A try the page
  // made by itself leaves the focus where the creator is working (it took it from a field being typed in).
  if (pressed || document.activeElement === document.body) (!$("next").hidden ? $("next-go") : !$("zip").hidden ? $("zip") : $("go")).focus();
}
// What the last run's copies say and how they were made: while neither changed (and no tagged file was
// taken off the list), a run tags only the files not tagged yet, into the same batch and zip. Re-tagging
// the whole list each time was slow on a large one and changed nothing in the copies already saved.
let made = null;  // {statement, signing} of the batch's copies
let cut = false;  // a tagged file was removed: the batch's zip holds it, so a new one is made
async function sameBatch(statement) {
  if (!batch || cut || !made || made.statement !== statement || made.signing !== !!serverInfo.signing) return false;
  if (!items.some((item) => item.tagged) || items.every((item) => item.tagged)) return false;
  // Expired, deleted or its server restarted: its zip cannot be added to.
  return fetch(batch.url).then((r) => r.ok, () => false);
}
async function run(fresh) {
  const statement = JSON.stringify(assertion());
  const adding = !fresh && await sameBatch(statement);
  const todo = adding ? items.filter((item) => !item.tagged) : items, kept = items.length - todo.length;
  let ok = 0, failed = 0, done = 0, gone = false;
  // The count moves outside the live region: in it, a screen reader was read every file's step of a run.
  const progress = () => { $("progress").textContent = `Tagging: ${done} of ${todo.length} done (${ok} tagged, ${failed} failed).`; };
  $("summary").textContent = adding ? `Tagging the ${todo.length} file${todo.length === 1 ? "" : "s"} not tagged yet; the ${kept} ` +
    `tagged before ${kept === 1 ? "is" : "are"} kept, with the same choices.` : `Tagging ${todo.length} file${todo.length === 1 ? "" : "s"}...`;
  for (const item of todo) { const status = item.row.cells[3]; status.textContent = "waiting"; status.className = "muted"; item.tagged = item.saved = false; item.tried = true; }
  if (!adding) {
    // The previous run's batch is deleted: its links, on rows not yet tagged again, would only answer 404.
    // Awaited: the batch's room (one of the server's batches, its disk) is what the new one may need.
    if (batch) await fetch(batch.url, {method: "DELETE", headers: auth()}).catch(() => {});
    batch = null; made = null; cut = false;
    try {
      const {r, body} = await ask("/v1/batches", {method: "POST", headers: auth()});
      if (!r.ok) throw Object.assign(new Error(body.detail || r.statusText), {status: r.status, title: body.title,
        after: Math.min(Number(r.headers.get("Retry-After")) || 0, 600)});
      batch = {url: "/v1/batches/" + body.id, files: body.files, zip: body.zip};
      retried = false;  // the next refusal is waited out by itself again
      made = {statement, signing: !!serverInfo.signing};
    } catch (e) {
      if (e.status === 503 || e.status === 507) limit = {why: e.message, retry: true, after: e.after};
      for (const item of items) fail(item, e.message);
      $("summary").textContent = `0 tagged, ${items.length} failed.` + (e.unreachable ? " " + AGAIN : ""); return;
    }
  }
  progress();
  let next = 0;
  async function worker() {
    // Once the server is gone or the batch full, the files not sent yet are not sent: each would only fail the same way.
    while (next < todo.length && !gone && !limit) {
      const item = todo[next++], status = item.row.cells[3];
      status.textContent = "tagging..."; status.className = "muted";
      const refused = refusal(item.file);
      try {
        if (refused) throw new Error(refused);
        const form = new FormData(); form.append("file", item.file, item.name);
        form.append("assertion", statement);
        const {r, body} = await ask(batch.files, {method: "POST", body: form, headers: auth()});
        if (!r.ok) throw Object.assign(new Error(body.detail || r.statusText), {status: r.status, title: body.title});
        ok++; item.tagged = true;
        // The name it has in the zip and is saved under: two files named alike are told apart there ("same-2.png").
        const saved = body.name || item.name, a = document.createElement("a");
        a.href = body.download; a.download = saved.split("/").pop();
        a.textContent = (body.carriers || []).includes("c2pa") ? "Tagged and signed: download" : "Tagged: download";
        a.setAttribute("aria-label", "Download tagged " + saved);
        status.textContent = ""; status.className = "good"; status.appendChild(a);
        if (saved !== item.name) status.append(` (saved as ${saved})`);
      } catch (e) {
        failed++; gone = gone || !!e.unreachable; fail(item, e.message, signingHint(e.message));
        if (batchFull(e)) limit = limit || {why: e.message, retry: false};
      }
      done++; progress();
    }
  }
  await Promise.all(Array.from({length: AT_ONCE}, worker));
  for (const item of todo.slice(next)) { failed++; fail(item, "not sent: " + (gone ? UNREACHABLE : limit.why)); }
  // A stopped server removes its batches: links to them would only fail later, at download time.
  if (gone && !(await fetch(batch.url).then((r) => r.ok, () => false))) {
    for (const item of items.filter((one) => one.tagged)) { fail(item, "it was tagged, but its copy went with the server when it stopped"); item.tagged = false; }
    failed += ok; ok = 0;
  }
  const all = items.filter((item) => item.tagged).length;
  $("progress").textContent = "";
  $("summary").textContent = `${ok} tagged, ${failed} failed.` + (gone ? " The rightsmeta server stopped during the run. " + AGAIN : "") +
    (adding && all > ok ? ` With the ${all - ok} tagged before, the zip holds ${all} files.` : "");
  $("zip").href = batch.zip; $("zip").hidden = all === 0;
}

// A download whose copy is gone (the server was stopped, or the batch expired unused) fails in the
// browser's download list without a word (Chromium: "canceled"). Ask the server first; say it here.
async function download(e) {
  const a = e.target.closest("a[download]");
  if (!a || !batch || a.dataset.asked) return;
  e.preventDefault();
  let why = "", gone = false;
  try {
    const {r, body} = await ask(batch.url);
    if (!r.ok) why = body.detail || r.statusText;
  } catch (err) { why = err.message; gone = !!err.unreachable; }
  if (!why) {  // still there: the download goes on
    for (const item of items) if (a.id === "zip" ? item.tagged : item.row.contains(a)) item.saved = true;
    a.dataset.asked = "1"; a.click(); delete a.dataset.asked; return;
  }
  for (const item of items) if (item.row.cells[3].querySelector("a")) { fail(item, "the tagged copy is no longer on the server: " + why); item.tagged = false; }
  $("zip").hidden = true;
  $("summary").textContent = "The tagged copies are no longer on the server. " +
    (gone ? AGAIN : "Press Tag files again. Your own files are unchanged.");
}
$("list").addEventListener("click", download); $("zip").addEventListener("click", download);

// Every file chosen or dropped is checked, one after the other, each with its own verdict naming it
// (only the first one was, without a word about the others).
$("check-file").addEventListener("change", take(checkAll));
const checkDrop = $("check-drop");
checkDrop.addEventListener("dragover", (e) => { e.preventDefault(); checkDrop.classList.add("over"); });
checkDrop.addEventListener("dragleave", () => checkDrop.classList.remove("over"));
checkDrop.addEventListener("drop", async (e) => { e.preventDefault(); checkDrop.classList.remove("over"); checkAll(await droppedFiles(e.dataTransfer)); });
let checking = 0;  // the latest set: a set chosen while another is checked replaces it
async function checkAll(files) {
  if (!files.length) return;
  const mine = ++checking, out = $("verdict"), said = $("check-summary");
  out.innerHTML = "";
  let intact = 0;
  for (const [n, file] of files.entries()) {
    said.textContent = files.length === 1 ? `Checking ${file.name}...` : `Checking ${n + 1} of ${files.length}: ${file.name}...`;
    const v = await check(file);
    if (mine !== checking) return;
    out.appendChild(verdict(file, v));
    if (v.status === "intact") intact++;
  }
  said.textContent = files.length === 1 ? `${files[0].name}: ${STATUS_WORDS[out.querySelector(".verdict-status").dataset.status] || ""}` :
    `${files.length} files checked: ${intact} intact, ${files.length - intact} not.`;
}
async function check(file) {
  try {
    const refused = refusal(file);
    if (refused) throw new Error(refused);
    const {r, body} = await ask("/v1/verify", {method: "POST", body: file, headers: auth()});
    return r.ok ? body : (body.verdict || {status: "unreadable", reasons: [body.detail || r.statusText]});
  } catch (err) { return {status: "unreadable", reasons: [err.message + (err.unreachable ? ". " + AGAIN : "")]}; }
}
function verdict(file, v) {
  const out = document.createElement("section"); out.className = "verdict";
  const name = file.relativePath || file.webkitRelativePath || file.name;
  out.setAttribute("aria-label", name);
  const line = (cls, text) => { const p = document.createElement("p"); p.className = cls; p.textContent = text; out.appendChild(p); return p; };
  // Which file this is about: the verdict of the previous one stayed on screen while this one was checked.
  line("verdict-file", "File: " + name);
  const h = line("verdict-status " + (v.status === "intact" ? "good" : "bad"), STATUS_WORDS[v.status] || v.status);
  h.dataset.status = v.status;
  // A file not read is never "Nothing stated" (that reads as "free to use"): what it says is not known.
  const unread = v.status === "unreadable", said = summary(v.permissions || {});
  line("verdict-says", !unread ? "What it says: " + said : said === "Nothing stated" ? "What it says: not known, the file could not be read."
    : "What it says, in the part that could be read: " + said);
  line("verdict-carriers", (v.carriers || []).length ? "Found in: " + v.carriers.map(carrierWords).join("; ") + "."
    : unread ? "Found in: not known." : "Found in: no place inside the file.");
  if (v.match) line("", "This file matches a work in your records (the ledger).");
  const list = (reasons) => { const ul = document.createElement("ul"); ul.className = "verdict-why";
    for (const reason of reasons) { const li = document.createElement("li"); li.textContent = reason; ul.appendChild(li); } return ul; };
  const reasons = v.reasons || [];
  out.appendChild(list(reasons.map(plainReason)));
  // The server's own words, for whoever wants to look them up or report them.
  if (reasons.length) {
    const more = document.createElement("details"), title = document.createElement("summary");
    title.textContent = "Technical details"; more.append(title, list(reasons)); more.lastChild.className = "verdict-technical";
    out.appendChild(more);
  }
  return out;
}

function health() {
  return ask("/healthz").then(({body: h}) => {
    if (h.max_upload) maxUpload = h.max_upload;
    serverInfo = h;
    $("signing").className = "muted";
    $("signing").textContent = h.signing ? "Files will also be signed with your signing identity (C2PA Content Credentials)."
      : h.can_make_identity ? "Files will not be signed: there is no signing identity yet."
      : "Files will not be signed: this server has no signing identity.";
    $("make-identity-box").hidden = h.signing || !h.can_make_identity;
  }, (e) => { $("signing").textContent = "Not connected: " + e.message + ". " + AGAIN; $("signing").className = "bad"; });
}
$("make-identity").addEventListener("click", async () => {
  try {
    const {r, body} = await ask("/v1/identity", {method: "POST", headers: {...auth(), "Content-Type": "application/json"},
      body: JSON.stringify($("holder").value.trim() ? {holder: $("holder").value.trim()} : {})});
    if (!r.ok) throw new Error(body.detail || r.statusText);
  } catch (e) { $("signing").textContent = "Could not create it: " + e.message; return; }
  await health();
});
health();
</script></body></html>
"""


def page() -> str:
    return PAGE


def _hash(tag: str) -> str:
    """The CSP source of the page's one inline <style> or <script>, so nothing else may run or style it."""
    import base64
    import hashlib
    import re

    found = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.S)
    assert found is not None
    return "'sha256-" + base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode() + "'"


# Nothing from elsewhere, no injected script: the page works offline and the token in it stays here.
HEADERS = {
    "Content-Security-Policy": (f"default-src 'none'; script-src {_hash('script')}; style-src {_hash('style')}; "
                                "connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
