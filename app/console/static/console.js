// KennelGate staff console: plain JavaScript, no framework, no build step.
// Every change is a call to the REST API, signed in by the console cookie plus this header.
"use strict";

const HEADER = { "X-KennelGate-Console": "1" };

function flash(text, bad) {
  const el = document.getElementById("flash");
  if (!el) return;
  el.textContent = text;
  el.className = bad ? "error" : "ok";
}

async function api(method, url, body) {
  const init = { method, headers: { ...HEADER }, credentials: "same-origin" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const r = await fetch(url, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!r.ok) {
    const d = data && data.detail !== undefined ? data.detail : data;
    const msg = typeof d === "string" ? d : (d && d.message) || JSON.stringify(d);
    throw new Error(`${r.status}: ${msg}`);
  }
  return data;
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// --- kennels, live ------------------------------------------------------------------------
function liveRefresh() {
  const live = document.getElementById("live");
  if (!live || !live.dataset.refresh) return;
  setInterval(async () => {
    try {
      const r = await fetch(live.dataset.refresh, { credentials: "same-origin" });
      if (r.ok && r.url.indexOf("/console/login") < 0) live.innerHTML = await r.text();
    } catch (_) { /* the next tick tries again */ }
  }, 3000);
}

// --- door override ------------------------------------------------------------------------
function overrideForm() {
  const form = document.getElementById("override");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { action: f.get("action"), reason: f.get("reason") || "" };
    if (f.get("minutes")) body.minutes = Number(f.get("minutes"));
    try {
      await api("POST", `/v1/kennels/${form.dataset.kennel}/override`, body);
      location.reload();
    } catch (e) { flash(e.message, true); }
  });
}

// --- review and relabel -------------------------------------------------------------------
function reviewTable() {
  const table = document.getElementById("review");
  if (!table) return;
  const rows = () => Array.from(table.querySelectorAll("tbody tr[data-frame]"));
  const count = document.getElementById("selected-count");
  const picked = () => rows().filter((r) => r.querySelector(".pick").checked);
  const update = () => { count.textContent = `${picked().length} selected`; };
  let current = 0;

  async function label(targets, species) {
    if (!targets.length) { flash("select rows first (x, or the boxes)", true); return; }
    try {
      const done = await api("POST", "/v1/decisions/labels", { frame_ids: targets.map((r) => r.dataset.frame), species });
      const byId = new Map(done.map((d) => [d.frame_id, d]));
      for (const r of targets) {
        const d = byId.get(r.dataset.frame);
        const cell = r.querySelector(".label");
        let strong = cell.querySelector("strong");
        if (!strong) { strong = document.createElement("strong"); cell.prepend(strong); }
        strong.textContent = d.label;
        r.classList.add("labelled");
        r.querySelector(".pick").checked = false;
      }
      update();
      flash(`${done.length} frame${done.length > 1 ? "s" : ""} labelled ${species}`);
    } catch (e) { flash(e.message, true); }
  }

  table.addEventListener("click", (ev) => {
    const b = ev.target.closest(".label-one");
    if (b) label([b.closest("tr")], b.dataset.species);
  });
  table.addEventListener("change", update);
  document.getElementById("select-all").addEventListener("change", (ev) => {
    rows().forEach((r) => { r.querySelector(".pick").checked = ev.target.checked; });
    update();
  });
  document.querySelectorAll(".bulk-label").forEach((b) => b.addEventListener("click", () => label(picked(), b.dataset.species)));

  const choices = Array.from(document.querySelectorAll(".bulk-label")).map((b) => b.dataset.species);
  const focus = (i) => { const all = rows(); if (!all.length) return; current = Math.max(0, Math.min(all.length - 1, i)); all[current].focus(); };
  document.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input[type=text], input[type=number], select, textarea")) return;
    const all = rows();
    if (ev.key === "j") focus(current + 1);
    else if (ev.key === "k") focus(current - 1);
    else if (ev.key === "x" && all[current]) { const c = all[current].querySelector(".pick"); c.checked = !c.checked; update(); }
    else if (/^[1-9]$/.test(ev.key) && choices[Number(ev.key) - 1]) {
      const targets = picked().length ? picked() : (all[current] ? [all[current]] : []);
      label(targets, choices[Number(ev.key) - 1]);
    } else return;
    ev.preventDefault();
  });
  table.addEventListener("focusin", (ev) => { const r = ev.target.closest("tr[data-frame]"); if (r) current = rows().indexOf(r); });
}

// --- species: upload (files, folders, zips) and photos ------------------------------------
async function filesOf(dataTransfer) {
  // Folders dropped from the desktop arrive as entries; walk them.
  const out = [];
  const walk = (entry) => new Promise((resolve) => {
    if (entry.isFile) entry.file((f) => { out.push(f); resolve(); }, () => resolve());
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      const all = [];
      const more = () => reader.readEntries(async (batch) => {
        if (!batch.length) { for (const e of all) await walk(e); resolve(); } else { all.push(...batch); more(); }
      }, () => resolve());
      more();
    } else resolve();
  });
  const entries = Array.from(dataTransfer.items || []).map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (entries.length) { for (const e of entries) await walk(e); return out; }
  return Array.from(dataTransfer.files || []);
}

function postWithProgress(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-KennelGate-Console", "1");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (_) { data = xhr.responseText; }
      resolve({ ok: xhr.status < 300, status: xhr.status, data });
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(form);
  });
}

function readinessHtml(c) {
  const pct = (x) => `${Math.round(100 * x)}%`;
  return `<section class="card readiness ${c.ready ? "ready" : "not-ready"}" id="readiness" data-species="${esc(c.species)}">
    <h2>${esc(c.species)}: ${c.ready ? "ready for a door" : "not ready yet"}</h2>
    <p><strong>${pct(c.predicted_accept)}</strong> of new photos predicted to be let in (threshold ${c.threshold.toFixed(3)})
      · ${c.photos} photos${c.scenes != null ? `, ${c.scenes} distinct scenes` : ""}${c.near_duplicates ? ` · ${c.near_duplicates} near-duplicates` : ""}</p>
    ${c.confused_with ? `<p>Most confused with <strong>${esc(c.confused_with)}</strong> (${(100 * (c.confused_rate || 0)).toFixed(1)}% of its photos).</p>` : ""}
    ${(c.advice || []).length ? `<ul class="advice">${c.advice.map((a) => `<li>${esc(a)}</li>`).join("")}</ul>` : ""}
  </section>`;
}

function uploadForm() {
  const drop = document.getElementById("drop");
  if (!drop) return;
  const input = document.getElementById("upload-files");
  const species = document.getElementById("upload-species");
  const bar = document.getElementById("upload-progress");
  const result = document.getElementById("upload-result");

  async function send(files) {
    const name = species.value.trim();
    if (!name) { flash("name the species first", true); species.focus(); return; }
    if (!files.length) return;
    const batches = [];
    for (let i = 0; i < files.length; i += 200) batches.push(files.slice(i, i + 200));
    let added = 0, last = null;
    const rows = [];
    bar.hidden = false;
    for (const [b, batch] of batches.entries()) {
      const form = new FormData();
      batch.forEach((f) => form.append("files", f, f.webkitRelativePath || f.name));
      const r = await postWithProgress(`/v1/species/${encodeURIComponent(name)}/photos`, form,
        (p) => { bar.value = 100 * (b + p) / batches.length; });
      const detail = r.ok ? r.data : (r.data && r.data.detail) || {};
      const rejected = (r.ok ? r.data.rejected : detail.rejected) || [];
      const bad = new Set(rejected.map((x) => x.file));
      for (const x of rejected) rows.push([x.file, "rejected", x.reason]);
      for (const f of batch) if (!bad.has(f.name) && !f.name.toLowerCase().endsWith(".zip")) rows.push([f.name, r.ok ? "added" : "not added", r.ok ? "" : (detail.message || detail)]);
      if (r.ok) { added += r.data.added; last = r.data; }
      else if (!rejected.length) rows.push([`batch ${b + 1}`, "failed", typeof detail === "string" ? detail : JSON.stringify(detail)]);
    }
    bar.value = 100;
    result.innerHTML = `<p id="upload-summary"><strong>${added}</strong> new photo${added === 1 ? "" : "s"} of ${esc(name)} added and indexed${last ? ` (${last.photos} in all)` : ""}; ${rows.filter((r) => r[1] !== "added").length} not added.</p>
      <table id="upload-files-table"><thead><tr><th>File</th><th>Result</th><th>Why</th></tr></thead><tbody>
      ${rows.map((r) => `<tr class="${r[1] === "added" ? "" : "bad"}"><td>${esc(r[0])}</td><td>${esc(r[1])}</td><td>${esc(r[2] || "")}</td></tr>`).join("")}
      </tbody></table>${last && last.readiness ? readinessHtml(last.readiness) : ""}`;
  }

  input.addEventListener("change", () => send(Array.from(input.files)));
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (ev) => { ev.preventDefault(); drop.classList.remove("over"); send(await filesOf(ev.dataTransfer)); });
}

function photoGrid() {
  document.querySelectorAll(".delete-photo").forEach((b) => b.addEventListener("click", async () => {
    try {
      await api("DELETE", `/v1/species/${encodeURIComponent(b.dataset.species)}/photos/${b.dataset.photo}`);
      b.closest("figure").remove();
      flash("photo deleted and removed from the index");
    } catch (e) { flash(e.message, true); }
  }));
}

// --- tokens (admins) ----------------------------------------------------------------------
function tokenPage() {
  const form = document.getElementById("issue-token");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const t = await api("POST", `/v1/tokens/${form.kind.value}`, { label: form.label.value });
      const out = document.getElementById("new-token");
      out.hidden = false;
      out.textContent = `New ${form.kind.value} token (shown once, copy it now): ${t.token}`;
    } catch (e) { flash(e.message, true); }
  });
  document.querySelectorAll(".revoke").forEach((b) => b.addEventListener("click", async () => {
    try { await api("DELETE", `/v1/tokens/${b.dataset.token}`); b.replaceWith("revoked"); } catch (e) { flash(e.message, true); }
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  liveRefresh(); overrideForm(); reviewTable(); uploadForm(); photoGrid(); tokenPage();
});
