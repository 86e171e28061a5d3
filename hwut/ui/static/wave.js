// The pin trace as a waveform: read the VCD the API serves, draw it as SVG on its
// virtual time axis. Reads what hwut writes (and plain VCD like it): $timescale, $var
// (several names may share an identifier: an LED and its pin), #time, scalar changes
// ("1!") and vector changes ("b1010 !", "bz !").
"use strict";

const HWUTWave = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const UNITS = { s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9, ps: 1e-12, fs: 1e-15 };

  function parse(text) {
    const signals = [];
    const byId = new Map();
    let scale = 1e-9, now = 0, truncated = false;
    const header = text.indexOf("$enddefinitions");
    const head = header < 0 ? text : text.slice(0, header);
    const ts = /\$timescale\s+(\d+)\s*([a-z]+)\s+\$end/.exec(head);
    if (ts) scale = Number(ts[1]) * (UNITS[ts[2]] || 1e-9);
    for (const m of head.matchAll(/\$var\s+\S+\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+\[[^\]]*\])?\s+\$end/g)) {
      const [, size, id, name] = m;
      if (byId.has(id)) { byId.get(id).names.push(name); continue; }
      const sig = { names: [name], width: Number(size), changes: [] };
      byId.set(id, sig);
      signals.push(sig);
    }
    const body = header < 0 ? "" : text.slice(header);
    for (const raw of body.split("\n")) {
      const line = raw.trim();
      if (!line) continue;
      const c = line[0];
      if (c === "#") { now = Number(line.slice(1)); continue; }
      if (c === "$") { if (line.includes("cut at")) truncated = true; continue; }
      let value, id;
      if (c === "b" || c === "B" || c === "r" || c === "R") {
        const sp = line.indexOf(" ");
        value = line.slice(1, sp); id = line.slice(sp + 1).trim();
        if (c === "b" || c === "B") value = /^[01]+$/.test(value) ? parseInt(value, 2) : value.toLowerCase();
      } else if ("01xzXZ".includes(c)) {
        value = c.toLowerCase(); id = line.slice(1);
      } else continue;
      const sig = byId.get(id);
      if (!sig) continue;
      const last = sig.changes[sig.changes.length - 1];
      if (last && last[0] === now) last[1] = value; else sig.changes.push([now, value]);
    }
    return { scale, end: now, truncated, signals };
  }

  function fmtTime(seconds) {
    const a = Math.abs(seconds);
    if (a === 0) return "0";
    if (a >= 1) return `${+seconds.toFixed(3)} s`;
    if (a >= 1e-3) return `${+(seconds * 1e3).toFixed(3)} ms`;
    if (a >= 1e-6) return `${+(seconds * 1e6).toFixed(3)} µs`;
    return `${+(seconds * 1e9).toFixed(1)} ns`;
  }

  function el(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function byteLabel(v) {
    if (typeof v !== "number") return "";
    if (v === 13) return "\\r";
    if (v === 10) return "\\n";
    return v >= 32 && v < 127 ? String.fromCharCode(v) : `0x${v.toString(16).padStart(2, "0")}`;
  }

  // Draws ``trace`` (from parse) into ``container``; zoom with the buttons or the wheel.
  function draw(container, trace) {
    const WIDTH = 1100, NAME = 150, ROW = 34, AXIS = 26;
    const plot = WIDTH - NAME - 10;
    let from = 0, to = Math.max(trace.end, 1);
    const tools = document.createElement("div");
    tools.className = "tools";
    const label = document.createElement("span");
    label.className = "muted";
    const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${AXIS + ROW * trace.signals.length + 6}`,
                            role: "img", "aria-label": "pin trace waveform" });
    const button = (text, act) => {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = text;
      b.addEventListener("click", () => { act(); render(); });
      tools.appendChild(b);
    };
    const zoom = (factor, centre) => {
      const c = centre === undefined ? (from + to) / 2 : centre;
      const span = Math.max((to - from) * factor, 10);
      from = Math.max(0, c - (c - from) * factor); to = from + span;
      if (to > trace.end) { to = Math.max(trace.end, 1); from = Math.max(0, to - span); }
    };
    const pan = (share) => {
      const span = to - from;
      from = Math.min(Math.max(0, from + span * share), Math.max(0, trace.end - span));
      to = from + span;
    };
    button("Zoom in", () => zoom(0.5));
    button("Zoom out", () => zoom(2));
    button("◀", () => pan(-0.5));
    button("▶", () => pan(0.5));
    button("Fit", () => { from = 0; to = Math.max(trace.end, 1); });
    tools.appendChild(label);
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const box = svg.getBoundingClientRect();
      const x = (ev.clientX - box.left) * WIDTH / box.width - NAME;
      zoom(ev.deltaY < 0 ? 0.8 : 1.25, from + (to - from) * Math.min(Math.max(x / plot, 0), 1));
      render();
    }, { passive: false });

    function render() {
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      const span = to - from;
      const x = (t) => NAME + (Math.min(Math.max(t, from), to) - from) * plot / span;
      label.textContent = `${fmtTime(from * trace.scale)} – ${fmtTime(to * trace.scale)} of ` +
        `${fmtTime(trace.end * trace.scale)} virtual time` + (trace.truncated ? " (trace cut at its size limit)" : "");
      // time axis: about ten ticks at a round step
      const raw = span / 10, mag = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
      for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
        svg.appendChild(el("line", { x1: x(t), x2: x(t), y1: AXIS - 6, y2: AXIS + ROW * trace.signals.length, class: "grid" }));
        svg.appendChild(el("text", { x: x(t) + 2, y: AXIS - 10 }, fmtTime(t * trace.scale)));
      }
      trace.signals.forEach((sig, row) => {
        const top = AXIS + row * ROW + 6, bottom = top + ROW - 12;
        const name = sig.names.length > 1 ? `${sig.names[1]} (${sig.names[0]})` : sig.names[0];
        svg.appendChild(el("text", { x: 4, y: top + 14, class: "name" }, name));
        const changes = sig.changes;
        // the change in force at ``from``, then those inside the view
        let i = 0;
        while (i + 1 < changes.length && changes[i + 1][0] <= from) i++;
        if (sig.width === 1) {
          let d = "";
          for (let k = i; k < changes.length && changes[k][0] <= to; k++) {
            const [t, v] = changes[k];
            const end = k + 1 < changes.length ? changes[k + 1][0] : trace.end;
            if (v !== "0" && v !== "1") {
              svg.appendChild(el("rect", { x: x(t), y: top, width: Math.max(x(end) - x(t), 0.5), height: bottom - top, class: "unknown" }));
              continue;
            }
            const y = v === "1" ? top : bottom;
            d += `${d ? "L" : "M"}${x(t).toFixed(2)},${y} L${x(end).toFixed(2)},${y} `;
          }
          if (d) svg.appendChild(el("path", { d, class: "level" }));
        } else {
          for (let k = i; k < changes.length && changes[k][0] <= to; k++) {
            const [t, v] = changes[k];
            if (typeof v !== "number") continue;
            const end = k + 1 < changes.length ? changes[k + 1][0] : trace.end;
            const x0 = x(t), w = Math.max(x(end) - x0, 1);
            const g = el("g", { class: "uart-byte" });
            g.appendChild(el("rect", { x: x0, y: top, width: w, height: bottom - top, class: "byte" }));
            g.appendChild(el("title", {}, `${byteLabel(v)} (0x${v.toString(16)}) at ${fmtTime(t * trace.scale)}`));
            if (w > 14) g.appendChild(el("text", { x: x0 + 2, y: bottom - 5 }, byteLabel(v)));
            svg.appendChild(g);
          }
        }
      });
    }
    container.replaceChildren(tools, svg);
    render();
  }

  return { parse, draw, fmtTime };
})();
