// Postroom: a little plain JavaScript where it helps. Keyboard shortcuts, live refresh,
// draft autosave, clickable rows. Everything works without it.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const csrf = document.body.dataset.csrf;
  const typing = (e) => /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;

  // Rows open their conversation; the inbox remembers its order for j/k on a conversation.
  const rows = Array.from(document.querySelectorAll("tr.conv[data-href]"));
  rows.forEach((tr) => tr.addEventListener("click", (e) => {
    if (e.target.closest("a,input,button,label")) return;
    location.href = tr.dataset.href;
  }));
  if (page === "inbox") {
    sessionStorage.setItem("postroom.list", JSON.stringify(rows.map((r) => r.dataset.id)));
    sessionStorage.setItem("postroom.back", location.pathname + location.search);
  }
  let sel = -1;
  const select = (i) => {
    if (!rows.length) return;
    sel = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("sel", j === sel));
    rows[sel].scrollIntoView({ block: "nearest" });
  };

  const conv = document.querySelector(".conv-page");
  const neighbour = (step) => {
    const list = JSON.parse(sessionStorage.getItem("postroom.list") || "[]");
    const i = list.indexOf(conv.dataset.conv);
    const next = list[i + step];
    if (i >= 0 && next) location.href = "/c/" + next;
  };
  const submit = (id) => { const f = document.getElementById(id); if (f) f.requestSubmit(); };
  const showTab = (kind) => {
    document.querySelectorAll("[data-tab]").forEach((b) => b.classList.toggle("on", b.dataset.tab === kind));
    ["reply", "note", "forward"].forEach((k) => {
      const f = document.getElementById(k + "-form");
      if (f) f.hidden = k !== kind;
    });
    const body = document.getElementById(kind + "-body");
    if (body) body.focus();
  };
  document.querySelectorAll("[data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  const back = document.getElementById("back");
  if (back && sessionStorage.getItem("postroom.back")) back.href = sessionStorage.getItem("postroom.back");

  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "?") { const d = document.getElementById("keys"); if (d && d.showModal) d.showModal(); return; }
    if (page === "inbox") {
      if (k === "j") select(sel + 1);
      else if (k === "k") select(sel - 1);
      else if ((k === "o" || k === "Enter") && sel >= 0) location.href = rows[sel].dataset.href;
      else if (k === "x" && sel >= 0) { const c = rows[sel].querySelector("input[type=checkbox]"); c.checked = !c.checked; }
      else return;
      e.preventDefault();
    } else if (conv) {
      if (k === "j") neighbour(1);
      else if (k === "k") neighbour(-1);
      else if (k === "u") location.href = (back && back.href) || "/inbox";
      else if (k === "r") showTab("reply");
      else if (k === "n") showTab("note");
      else if (k === "a") submit("assign-me-form");
      else if (k === "c") submit("close-form");
      else return;
      e.preventDefault();
    }
  });

  // Drafts: saved a moment after the agent stops typing, so a closed browser loses nothing.
  document.querySelectorAll("form[data-kind]").forEach((form) => {
    let timer = null;
    const saved = form.querySelector(".saved");
    const save = () => {
      const data = new URLSearchParams();
      data.set("csrf", csrf);
      data.set("kind", form.dataset.kind);
      ["from", "to", "cc", "body"].forEach((n) => { const el = form.elements[n]; if (el) data.set(n, el.value); });
      fetch(form.action.replace(/\/(reply|note)$/, "/draft"), { method: "POST", body: data, credentials: "same-origin" })
        .then((r) => { if (r.ok && saved) saved.textContent = saved.dataset.ok || "✓"; })
        .catch(() => {});
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(save, 800); });
    form.addEventListener("submit", () => clearTimeout(timer));
  });
  // Reply all: everyone else on the customer's last message goes to Cc.
  const all = document.getElementById("reply-all");
  if (all) all.addEventListener("click", () => {
    const cc = document.getElementById("reply-cc");
    const have = cc.value.split(/[,;]/).map((x) => x.trim().toLowerCase()).filter(Boolean);
    all.dataset.cc.split(",").map((x) => x.trim()).filter((x) => x && !have.includes(x.toLowerCase())).forEach((x) => have.push(x));
    cc.value = have.join(", ");
    document.getElementById("reply-body").focus();
  });
  // Open the tab of a note draft.
  const noteBody = document.getElementById("note-body");
  if (noteBody && noteBody.value.trim() && !document.getElementById("reply-body").value.trim()) showTab("note");

  // Live refresh: the inbox reloads when mail arrives; a conversation offers to.
  if (page === "inbox" || page === "conversation") {
    let stamp = null;
    const live = document.getElementById("live");
    const poll = () => {
      fetch("/stamp", { credentials: "same-origin" }).then((r) => r.json()).then((j) => {
        if (stamp !== null && j.stamp !== stamp) {
          const busy = page === "conversation" || document.querySelector("input[name=ids]:checked");
          if (busy) { live.hidden = false; } else { location.reload(); return; }
        }
        stamp = j.stamp;
      }).catch(() => {}).finally(() => setTimeout(poll, 5000));
    };
    poll();
    const again = document.getElementById("live-reload");
    if (again) again.addEventListener("click", (e) => { e.preventDefault(); location.reload(); });
  }

  // Admin lists: a filter box hides rows without the typed text; clicking a column
  // heading with data-sort sorts by it (again: the other way). Numbers sort as numbers.
  document.querySelectorAll("input.filterbox[data-filter]").forEach((box) => {
    const table = document.getElementById(box.dataset.filter);
    if (!table) return;
    box.addEventListener("input", () => {
      const q = box.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach((tr) => {
        tr.hidden = q !== "" && !tr.textContent.toLowerCase().includes(q);
      });
    });
  });
  document.querySelectorAll("table.admin-list th[data-sort]").forEach((th) => {
    th.tabIndex = 0;
    const sort = () => {
      const table = th.closest("table");
      const body = table.tBodies[0];
      const col = Array.from(th.parentNode.children).indexOf(th);
      const dir = th.dataset.dir === "asc" ? "desc" : "asc";
      table.querySelectorAll("th[data-sort]").forEach((h) => { delete h.dataset.dir; });
      th.dataset.dir = dir;
      const key = (tr) => {
        const cell = tr.children[col];
        return cell ? (cell.dataset.key || cell.textContent.trim()) : "";
      };
      const num = th.dataset.sort === "num";
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const c = num ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
        return dir === "asc" ? c : -c;
      });
      rows.forEach((r) => body.appendChild(r));
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
  });

  // Mail account form: a provider preset fills the server fields at once (without
  // JavaScript, the "Fill in" button asks the server to do the same).
  const preset = document.getElementById("f-preset");
  if (preset) preset.addEventListener("change", () => {
    const o = preset.selectedOptions[0];
    if (!o || !o.dataset.host) return;
    const set = (id, v) => { const el = document.getElementById(id); if (el) el.value = v; };
    set("f-protocol", "imap");
    set("f-host", o.dataset.host);
    set("f-port", o.dataset.port);
    set("f-security", o.dataset.security);
  });
  document.querySelectorAll("form.account-remove[data-confirm]").forEach((f) => f.addEventListener("submit", (e) => {
    if (!window.confirm(f.dataset.confirm)) e.preventDefault();
  }));
})();
