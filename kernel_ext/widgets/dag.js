// llbook DAG view (anywidget ES module; no build step, no imports).
// The SVG comes from graphviz with one <g class="node" id="<digest>"> per vertex; one
// delegated click listener serves every vertex, so large graphs stay cheap.

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

function field(label, value, cls = "") {
  return h("div", { class: "llbook-field " + cls },
    h("span", { class: "llbook-field-label", text: label }),
    h("span", { class: "llbook-field-value", text: value == null ? "" : String(value) }));
}

function details(v) {
  const box = h("div", { class: "llbook-details", "data-digest": v.digest });
  box.append(h("div", { class: "llbook-details-title", text: v.name }));
  const where = v.cell ? `${v.cell}${v.line != null ? ", line " + v.line : ""}` : "(not from a cell)";
  box.append(h("pre", { class: "llbook-instruction", text: v.instruction || v.name }));
  box.append(field("where", where));
  box.append(field("stage", v.stage || ""));
  box.append(field("status", v.status, "llbook-status-" + v.status));
  box.append(field("digest", v.digest, "llbook-digest"));
  box.append(field("cache key", v.cache_key || "(not solved yet)", "llbook-cache-key"));
  if (v.duration != null) box.append(field("duration", v.duration.toFixed(2) + " s"));
  if (v.layer_size != null) box.append(field("layer size", human(v.layer_size)));
  if (v.error) box.append(h("pre", { class: "llbook-error", text: v.error }));
  if (v.warnings && v.warnings.length) {
    const list = h("ul", { class: "llbook-details-warnings" });
    for (const text of v.warnings) list.append(h("li", { text }));
    box.append(h("div", { class: "llbook-field-label", text: "build checks" }), list);
  }
  const reasons = h("ul", { class: "llbook-reasons" });
  if (v.status === "cached") reasons.append(h("li", { text: "cached: same cache key as an earlier build" }));
  for (const r of v.reasons || []) {
    const li = h("li", { text: r.message });
    if (r.files && r.files.length) li.append(h("div", { class: "llbook-files", text: r.files.join(", ") }));
    reasons.append(li);
  }
  box.append(h("div", { class: "llbook-field-label", text: "why" }), reasons);
  box.append(h("details", {}, h("summary", { text: "op (JSON)" }),
    h("pre", { class: "llbook-op-json", text: JSON.stringify(v.op_json, null, 2) })));
  return box;
}

function render({ model, el }) {
  el.classList.add("llbook-widget", "llbook-dag");
  if (model.get("compact")) el.classList.add("llbook-compact");
  let scale = 1;
  const legend = h("div", { class: "llbook-legend" });
  for (const item of model.get("legend")) {
    legend.append(h("span", { class: "llbook-legend-item" },
      h("span", { class: "llbook-swatch", style: `background:${item.fill}` }), item.label));
  }
  const graph = h("div", { class: "llbook-graph" });
  const canvas = h("div", { class: "llbook-graph-canvas" });
  graph.append(canvas);
  const pane = h("div", { class: "llbook-details-pane" },
    h("div", { class: "llbook-hint", text: "Click a vertex to see its instruction, op, digest, cache key and why it was rebuilt." }));
  const zoom = (f) => { scale = f === 0 ? 1 : Math.min(4, Math.max(0.2, scale * f)); canvas.style.transform = `scale(${scale})`; };
  const toolbar = h("div", { class: "llbook-toolbar" },
    h("button", { class: "llbook-btn", title: "zoom out", onclick: () => zoom(1 / 1.25), text: "−" }),
    h("button", { class: "llbook-btn", title: "zoom in", onclick: () => zoom(1.25), text: "+" }),
    h("button", { class: "llbook-btn", title: "reset zoom", onclick: () => zoom(0), text: "1:1" }),
    h("span", { class: "llbook-stage", text: model.get("stage") ? `stage ${model.get("stage")}` : "" }),
    legend);
  const why = h("div", { class: "llbook-why-list" });
  const body = h("div", { class: "llbook-dag-body" }, graph, pane);
  el.append(toolbar, body, why);

  function select(digest) {
    const v = model.get("vertices")[digest];
    canvas.querySelectorAll("g.node.llbook-selected").forEach((n) => n.classList.remove("llbook-selected"));
    why.querySelectorAll(".llbook-why-entry.llbook-selected").forEach((n) => n.classList.remove("llbook-selected"));
    if (!v) return;
    const node = canvas.querySelector(`g.node[id="${CSS.escape(digest)}"]`);
    if (node) {
      node.classList.add("llbook-selected");
      if (node.scrollIntoView) node.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    why.querySelectorAll(`.llbook-why-entry[data-digest="${CSS.escape(digest)}"]`)
      .forEach((n) => n.classList.add("llbook-selected"));
    pane.replaceChildren(details(v));
  }

  function drawGraph() {
    canvas.innerHTML = model.get("svg") || "<div class='llbook-hint'>no vertices yet</div>";
    const svg = canvas.querySelector("svg");
    if (svg) svg.removeAttribute("width"), svg.setAttribute("class", "llbook-svg");
    if (model.get("selected")) select(model.get("selected"));
  }

  function drawWhy() {
    why.replaceChildren();
    const cells = model.get("why") || [];
    if (!cells.length) return;
    why.append(h("div", { class: "llbook-section-title", text: "Why rebuilt" }));
    for (const cell of cells) {
      const list = h("ul");
      for (const e of cell.entries) {
        const li = h("li", { class: "llbook-why-entry " + (e.cached ? "llbook-why-cached" : "llbook-why-rebuilt"),
          "data-digest": e.digest, onclick: () => { model.set("selected", e.digest); model.save_changes(); } });
        li.append(h("code", { text: e.name }), document.createTextNode(e.cached ? " — cached" : " — rebuilt"));
        if (!e.cached) {
          const reasons = h("ul");
          for (const r of e.reasons) {
            const item = h("li", { text: r.message });
            if (r.old || r.new) item.append(h("div", { class: "llbook-old-new" },
              h("span", { class: "llbook-old", text: r.old }), " → ", h("span", { class: "llbook-new", text: r.new })));
            reasons.append(item);
          }
          li.append(reasons);
        }
        list.append(li);
      }
      why.append(h("div", { class: "llbook-why-cell" }, h("b", { text: cell.cell }), list));
    }
  }

  canvas.addEventListener("click", (event) => {
    const node = event.target.closest("g.node");
    if (!node || !node.id) return;
    model.set("selected", node.id);
    model.save_changes();
  });
  const onSelected = () => select(model.get("selected"));
  model.on("change:selected", onSelected);
  model.on("change:svg", drawGraph);
  model.on("change:why", drawWhy);
  drawGraph();
  drawWhy();
  return () => {
    model.off("change:selected", onSelected);
    model.off("change:svg", drawGraph);
    model.off("change:why", drawWhy);
  };
}

export default { render };
