// llbook layers view, as in dive (anywidget ES module; no build step, no imports).
// The file tree is lazy: a folder's rows are asked from the kernel when it is expanded
// ({type: "children"} over the widget's message channel), so 50,000-file layers cost
// only what is open.

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

function human(n) {
  if (n == null) return "";
  const units = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

const KINDS = ["added", "modified", "removed", "unmodified"];
const EXPAND_ALL_LIMIT = 3000;

function render({ model, el }) {
  el.classList.add("llbook-widget", "llbook-layers");
  let req = 0;
  const pending = new Map();
  const ask = (content) => new Promise((resolve) => {
    const id = ++req;
    pending.set(id, resolve);
    model.send({ ...content, req: id });
  });
  const onMsg = (msg) => {
    if (msg && pending.has(msg.req)) { pending.get(msg.req)(msg); pending.delete(msg.req); }
  };
  model.on("msg:custom", onMsg);

  // -- layout ---------------------------------------------------------------------------
  const totals = h("div", { class: "llbook-totals" });
  const layerTable = h("table", { class: "llbook-layer-table" });
  const treeHead = h("div", { class: "llbook-tree-row llbook-tree-head" },
    h("span", { class: "llbook-col-mode", text: "permission" }),
    h("span", { class: "llbook-col-owner", text: "uid:gid" }),
    h("span", { class: "llbook-col-size", text: "size" }),
    h("span", { class: "llbook-col-name", text: "path" }));
  const tree = h("div", { class: "llbook-tree", role: "tree" });
  const status = h("div", { class: "llbook-tree-status" });
  const diffPane = h("div", { class: "llbook-diff-pane" });
  const filter = h("input", { class: "llbook-filter", type: "text", placeholder: "regex filter, e.g. \\.py$" });
  const modeSel = h("select", { class: "llbook-mode" },
    h("option", { value: "layer", text: "this layer only" }),
    h("option", { value: "aggregated", text: "aggregated up to this layer" }));
  const toggles = h("span", { class: "llbook-toggles" });
  for (const k of KINDS) {
    const box = h("input", { type: "checkbox", class: `llbook-toggle llbook-toggle-${k}`, "data-kind": k });
    box.checked = model.get("kinds").includes(k);
    box.addEventListener("change", () => {
      const kinds = KINDS.filter((x) => toggles.querySelector(`[data-kind=${x}]`).checked);
      model.set("kinds", kinds); model.save_changes();
    });
    toggles.append(h("label", { class: `llbook-toggle-label llbook-${k}` }, box, k));
  }
  const sortSel = h("select", { class: "llbook-sort", title: "order of the tree and the layer list" },
    h("option", { value: "name", text: "sort by name" }),
    h("option", { value: "size", text: "sort by size" }));
  const toolbar = h("div", { class: "llbook-toolbar" }, modeSel, sortSel, toggles, filter,
    h("button", { class: "llbook-btn llbook-expand-all", text: "expand all", onclick: () => expandAll() }),
    h("button", { class: "llbook-btn llbook-collapse-all", text: "collapse all", onclick: () => collapseAll() }),
    h("button", { class: "llbook-btn llbook-export-csv", text: "CSV", title: "export the tree as CSV", onclick: () => exportTree("csv") }),
    h("button", { class: "llbook-btn llbook-export-json", text: "JSON", title: "export the tree as JSON", onclick: () => exportTree("json") }));
  const compareOther = h("input", { class: "llbook-compare-other", type: "text",
    placeholder: "compare with: a stage, history:^1, an image (registry, docker-archive://, oci-layout://)" });
  const comparePlatform = h("select", { class: "llbook-compare-platform", title: "the platform of a multi-platform image" },
    h("option", { value: "", text: "default platform" }));
  const compareResult = h("div", { class: "llbook-compare-result" });
  const compareBox = h("div", { class: "llbook-compare" }, compareOther, comparePlatform,
    h("button", { class: "llbook-btn llbook-compare-button", text: "compare", onclick: () => compareWith() }), compareResult);
  compareOther.addEventListener("keydown", (e) => { if (e.key === "Enter") compareWith(); });
  compareOther.addEventListener("change", () => listPlatforms());

  // the platforms a multi-platform image offers, to pick one
  async function listPlatforms() {
    const other = compareOther.value.trim();
    comparePlatform.setAttribute("aria-busy", "true");
    const reply = other ? await ask({ type: "platforms", other }) : { platforms: [] };
    const keep = comparePlatform.value;
    comparePlatform.replaceChildren(h("option", { value: "", text: "default platform" }),
      ...(reply.platforms || []).map((p) => h("option", { value: p, text: p })));
    if ((reply.platforms || []).includes(keep)) comparePlatform.value = keep;
    comparePlatform.dataset.count = String((reply.platforms || []).length);
    comparePlatform.setAttribute("aria-busy", "false");
  }
  const previewBox = h("div", { class: "llbook-preview-box" });
  const diffBox = h("div", { class: "llbook-diff-box" });
  diffPane.append(previewBox, diffBox);
  el.append(totals, h("div", { class: "llbook-layers-body" },
    h("div", { class: "llbook-layer-list" }, layerTable),
    h("div", { class: "llbook-tree-box" }, toolbar, treeHead, tree, status)), diffPane, compareBox);

  // -- layer list and totals ----------------------------------------------------------
  function drawTotals() {
    const t = model.get("totals") || {};
    totals.replaceChildren(
      h("span", { class: "llbook-total", text: `image size ${human(t.size || 0)}` }),
      h("span", { class: "llbook-total llbook-wasted", text: `wasted ${human(t.wasted || 0)}` }),
      h("span", { class: "llbook-total llbook-efficiency", text: `efficiency ${((t.score ?? 1) * 100).toFixed(1)} %` }));
    const waste = t.inefficiencies || [];
    if (waste.length) {
      const list = h("table", { class: "llbook-waste-table" },
        h("tr", {}, h("th", { text: "count" }), h("th", { text: "total space" }), h("th", { text: "path" })));
      for (const w of waste) {
        list.append(h("tr", {}, h("td", { text: String(w.count) }), h("td", { text: human(w.size) }),
          h("td", { class: "llbook-waste-path", text: w.path })));
      }
      totals.append(h("details", { class: "llbook-waste" },
        h("summary", { text: `${waste.length} path(s) written by more than one layer` }), list));
    }
  }

  function drawLayers() {
    layerTable.replaceChildren(h("tr", {}, ...["#", "size", "changes", "instruction", "digest"].map((x) => h("th", { text: x }))));
    const rows = [...model.get("layers")];
    if (model.get("sort") === "size") rows.sort((a, b) => b.size - a.size || a.index - b.index);
    for (const l of rows) {
      const tr = h("tr", { class: "llbook-layer-row" + (l.index === model.get("layer") ? " llbook-selected" : ""),
        "data-index": l.index,
        onclick: () => { model.set("layer", l.index); model.save_changes(); } },
        h("td", { text: String(l.index) }), h("td", { text: human(l.size) }),
        h("td", { text: `+${l.added} ~${l.modified} -${l.removed}` }),
        h("td", { class: "llbook-instruction-cell", text: l.instruction }),
        h("td", { class: "llbook-digest-cell", title: l.digest || `cache key ${l.cache_key} (a built layer has a digest once exported)`,
          text: l.digest ? l.digest.slice(0, 19) : (l.cache_key ? `key ${l.cache_key.slice(7, 19)}` : "") }));
      layerTable.append(tr);
    }
  }

  // -- tree -------------------------------------------------------------------------------
  function query(path) {
    return ask({ type: "children", layer: model.get("layer"), mode: model.get("mode"), path,
      pattern: model.get("pattern"), kinds: model.get("kinds"), sort: model.get("sort") });
  }

  function rowFor(entry, depth) {
    const twist = h("span", { class: "llbook-twist", text: entry.has_children ? "▸" : "" });
    const name = entry.name + (entry.dir ? "/" : "") + (entry.link ? ` → ${entry.link}` : "");
    const row = h("div", { class: `llbook-tree-row llbook-${entry.kind}` + (entry.dir ? " llbook-dir" : " llbook-file"),
      role: "treeitem", "data-path": entry.path, "data-kind": entry.kind },
      h("span", { class: "llbook-col-mode", text: entry.mode }),
      h("span", { class: "llbook-col-owner", text: entry.owner }),
      h("span", { class: "llbook-col-size", text: human(entry.size) }),
      h("span", { class: "llbook-col-name", style: `padding-left:${depth * 14}px` }, twist, h("span", { class: "llbook-name", text: name })));
    const node = h("div", { class: "llbook-tree-node" }, row);
    node._entry = entry; node._depth = depth; node._open = false;
    row.addEventListener("click", () => {
      if (entry.has_children) toggle(node);
      else if (!entry.dir) showFile(entry);
    });
    return node;
  }

  async function fill(container, path, depth) {
    const reply = await query(path);
    if (reply.error) { status.textContent = reply.error; status.classList.add("llbook-error"); return []; }
    status.classList.remove("llbook-error");
    const nodes = reply.entries.map((e) => rowFor(e, depth));
    container.replaceChildren(...nodes);
    if (reply.more) container.append(h("div", { class: "llbook-more", text: `… ${reply.more} more entries (use the filter)` }));
    return nodes;
  }

  async function toggle(node, open) {
    const want = open ?? !node._open;
    if (want === node._open) return node._kids || [];
    node._open = want;
    node.querySelector(".llbook-twist").textContent = want ? "▾" : "▸";
    node.classList.toggle("llbook-open", want);
    if (!want) { if (node._box) node._box.remove(); node._box = null; node._kids = null; return []; }
    node._box = h("div", { class: "llbook-tree-children", role: "group" });
    node.append(node._box);
    node._kids = await fill(node._box, node._entry.path, node._depth + 1);
    return node._kids;
  }

  async function expandAll() {
    let budget = EXPAND_ALL_LIMIT;
    const queue = [...tree.querySelectorAll(":scope > .llbook-tree-node")];
    while (queue.length && budget > 0) {
      const node = queue.shift();
      if (!node._entry.has_children) continue;
      const kids = await toggle(node, true);
      budget -= kids.length;
      queue.push(...kids);
    }
    status.textContent = budget <= 0 ? `expanded the first ${EXPAND_ALL_LIMIT} entries` : "";
  }

  function collapseAll() {
    tree.querySelectorAll(":scope > .llbook-tree-node").forEach((n) => toggle(n, false));
  }

  let drawing = 0;
  async function redrawTree() {
    const mine = ++drawing;
    tree.setAttribute("aria-busy", "true");
    status.textContent = "";
    await fill(tree, "/", 0);
    if (model.get("pattern")) await expandAll();  // show what the filter found
    if (mine === drawing) {  // the latest redraw says which layer the tree shows
      tree.dataset.layer = String(model.get("layer"));
      tree.dataset.sort = model.get("sort");
      tree.setAttribute("aria-busy", "false");
    }
  }

  // -- file diff between two layers ---------------------------------------------------------
  async function showDiff(path, oldIndex, newIndex) {
    const layer = model.get("layer");
    const old = oldIndex ?? Math.max(0, layer - 1);
    const cur = newIndex ?? layer;
    const pick = (value) => {
      const sel = h("select", { class: "llbook-diff-layer" });
      for (const l of model.get("layers")) sel.append(h("option", { value: l.index, text: `layer ${l.index}` }));
      sel.value = String(value);
      return sel;
    };
    const a = pick(old), b = pick(cur);
    const again = () => showDiff(path, Number(a.value), Number(b.value));
    a.addEventListener("change", again); b.addEventListener("change", again);
    const reply = await ask({ type: "diff", path, old, new: cur });
    const body = h("pre", { class: "llbook-diff" });
    if (reply.error || reply.note) body.append(h("div", { class: "llbook-diff-note", text: reply.error || reply.note }));
    for (const line of reply.lines || []) {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "llbook-diff-add"
        : line.startsWith("-") && !line.startsWith("---") ? "llbook-diff-del"
        : line.startsWith("@@") ? "llbook-diff-hunk" : "";
      body.append(h("div", { class: cls, text: line }));
    }
    diffBox.replaceChildren(h("div", { class: "llbook-section-title" }, `diff of ${path}: `, a, " → ", b,
      h("button", { class: "llbook-btn", text: "close", onclick: () => diffBox.replaceChildren() })), body);
  }

  // -- a file's contents as of the selected layer: text (capped), hex, a symlink's target ------
  async function showFile(entry) {
    const layer = model.get("layer");
    const reply = await ask({ type: "preview", layer, path: entry.path });
    const body = h("pre", { class: `llbook-preview llbook-preview-${reply.kind || "error"}` });
    if (reply.error || reply.note) body.append(h("div", { class: "llbook-preview-note", text: reply.error || reply.note }));
    if (reply.kind === "text") body.append(document.createTextNode(reply.text));
    else if (reply.kind === "binary") body.append(document.createTextNode(reply.lines.join("\n")));
    else if (reply.kind === "symlink") body.append(h("span", { class: "llbook-preview-link", text: `${reply.path} → ${reply.link}` }));
    if (reply.truncated) body.append(h("div", { class: "llbook-preview-note", text: `… ${human(reply.size)} in all, the start shown` }));
    previewBox.replaceChildren(h("div", { class: "llbook-section-title" }, `${entry.path} in layer ${layer} (${reply.kind}, ${human(reply.size)})`,
      h("button", { class: "llbook-btn", text: "close", onclick: () => previewBox.replaceChildren() })), body);
    if (entry.kind === "modified") await showDiff(entry.path);
    else diffBox.replaceChildren();
  }

  // -- the difference from another result or image to this one --------------------------------
  async function compareWith() {
    const other = compareOther.value.trim();
    if (!other) return;
    compareResult.replaceChildren(h("div", { class: "llbook-compare-note", text: `comparing with ${other} …` }));
    compareBox.setAttribute("aria-busy", "true");
    const reply = await ask({ type: "compare", other, platform: comparePlatform.value });
    compareBox.setAttribute("aria-busy", "false");
    if (reply.error) { compareResult.replaceChildren(h("div", { class: "llbook-error", text: reply.error })); return; }
    const table = h("table", { class: "llbook-compare-table" },
      h("tr", {}, ...["change", "path", "before", "after", "what"].map((x) => h("th", { text: x }))));
    for (const c of reply.changes) {
      table.append(h("tr", { class: `llbook-compare-row llbook-compare-${c.kind}`, "data-path": c.path, "data-kind": c.kind },
        h("td", { text: c.kind }), h("td", { class: "llbook-compare-path", text: c.path }),
        h("td", { text: c.old_size < 0 ? "" : human(c.old_size) }), h("td", { text: c.new_size < 0 ? "" : human(c.new_size) }),
        h("td", { text: c.what })));
    }
    const delta = reply.size_delta;
    compareResult.replaceChildren(h("div", { class: "llbook-section-title llbook-compare-summary",
      text: `${reply.old}${reply.platform ? " (" + reply.platform + ")" : ""} → ${reply.new}: ${reply.added} added, ${reply.removed} removed, ${reply.changed} changed (${delta < 0 ? "-" : "+"}${human(Math.abs(delta))})` }), table);
  }

  // -- export of the tree shown (the selected layer, its mode and order) -------------------------
  async function exportTree(format) {
    const reply = await ask({ type: "export", format, layer: model.get("layer"), mode: model.get("mode"), sort: model.get("sort") });
    if (reply.error) { status.textContent = reply.error; return; }
    const url = URL.createObjectURL(new Blob([reply.text], { type: format === "csv" ? "text/csv" : "application/json" }));
    const link = h("a", { href: url, download: reply.filename, class: "llbook-export-link", text: `download ${reply.filename}` });
    status.replaceChildren(link);
    link.click();
  }

  // -- wiring ---------------------------------------------------------------------------------
  modeSel.value = model.get("mode");
  sortSel.value = model.get("sort");
  sortSel.addEventListener("change", () => { model.set("sort", sortSel.value); model.save_changes(); });
  const onSort = () => { sortSel.value = model.get("sort"); drawLayers(); redrawTree(); };
  model.on("change:sort", onSort);
  modeSel.addEventListener("change", () => { model.set("mode", modeSel.value); model.save_changes(); });
  let timer = null;
  filter.value = model.get("pattern");
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { model.set("pattern", filter.value); model.save_changes(); }, 250);
  });
  const onLayer = () => { drawLayers(); redrawTree(); };
  model.on("change:layer", onLayer);
  model.on("change:mode", redrawTree);
  model.on("change:kinds", redrawTree);
  model.on("change:pattern", redrawTree);
  model.on("change:totals", drawTotals);
  model.on("change:layers", onLayer);
  drawTotals();
  drawLayers();
  redrawTree();
  return () => {
    model.off("msg:custom", onMsg);
    model.off("change:layer", onLayer);
    model.off("change:mode", redrawTree);
    model.off("change:sort", onSort);
    model.off("change:kinds", redrawTree);
    model.off("change:pattern", redrawTree);
    model.off("change:totals", drawTotals);
    model.off("change:layers", onLayer);
  };
}

export default { render };
