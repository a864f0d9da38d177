// llbook's "Debug" button (anywidget ES module; no build step, no imports). A click asks
// the kernel for a terminal running `llbook debug` ({type: "open"}); when the kernel names
// it (the `terminal` trait) it is opened as a JupyterLab terminal panel where the lab
// application is reachable (window.jupyterapp), else the name is shown for the Running panel.

function openPanel(name) {
  const app = window.jupyterapp;
  if (app && app.commands && app.commands.hasCommand("terminal:open")) {
    app.commands.execute("terminal:open", { name });
    return true;
  }
  return false;
}

function render({ model, el }) {
  el.classList.add("llbook-widget", "llbook-debug");
  const button = document.createElement("button");
  button.className = "llbook-debug-button jp-mod-styled jp-mod-warn";
  button.textContent = "Debug";
  button.title = model.get("label");
  const status = document.createElement("span");
  status.className = "llbook-debug-status";
  el.append(button, status);
  let opened = "";
  const show = () => {
    const name = model.get("terminal");
    const error = model.get("error");
    status.textContent = error ? ` ${error}` : name ? ` terminal ${name}: ${model.get("label")}` : "";
    el.dataset.terminal = name;
    if (name && name !== opened) {
      opened = name;
      if (!openPanel(name)) status.textContent += " (open it in the Running terminals panel)";
    }
  };
  button.addEventListener("click", () => {
    button.disabled = true;
    model.send({ type: "open" });
  });
  model.on("change:terminal", () => { button.disabled = false; show(); });
  model.on("change:error", () => { button.disabled = false; show(); });
  show();
}

export default { render };
