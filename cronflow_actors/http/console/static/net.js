// Draws a net workflow (GET /workflows/{id}/net) as SVG: conditions as circles holding their
// tokens, tasks as boxes coloured by state, flows as arrows. Columns are the distance from the
// start condition (breadth first, so loops do not stretch the drawing); a flow that goes back
// to an earlier column is drawn as an arc under the net.
"use strict";

window.drawNet = (function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLUMN = 150, ROW = 74, PAD = 34, TASK_W = 112, TASK_H = 38, PLACE_R = 15, IMPLICIT_R = 8;

  function el(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function layout(view) {
    const nodes = new Map();
    for (const c of view.conditions) nodes.set("c:" + c.name, { kind: "condition", item: c, next: [] });
    for (const t of view.tasks) nodes.set("t:" + t.name, { kind: "task", item: t, next: [] });
    const edges = [];
    for (const t of view.tasks) {
      for (const c of t.inputs) edges.push(["c:" + c, "t:" + t.name]);
      for (const c of t.outputs) edges.push(["t:" + t.name, "c:" + c]);
    }
    for (const [from, to] of edges) if (nodes.has(from) && nodes.has(to)) nodes.get(from).next.push(to);
    const layer = new Map([["c:" + view.start, 0]]);
    const queue = ["c:" + view.start];
    while (queue.length) {
      const key = queue.shift();
      for (const next of nodes.get(key)?.next || []) {
        if (!layer.has(next)) { layer.set(next, layer.get(key) + 1); queue.push(next); }
      }
    }
    let deepest = Math.max(0, ...layer.values());
    for (const key of nodes.keys()) if (!layer.has(key)) layer.set(key, ++deepest);
    const endKey = "c:" + view.end;
    const last = Math.max(...layer.values());
    if (nodes.has(endKey) && layer.get(endKey) < last) layer.set(endKey, last + 1);
    const columns = new Map();
    for (const key of nodes.keys()) {
      const column = layer.get(key);
      if (!columns.has(column)) columns.set(column, []);
      columns.get(column).push(key);
    }
    const height = Math.max(...[...columns.values()].map((keys) => keys.length));
    const at = new Map();
    for (const [column, keys] of columns) {
      const offset = (height - keys.length) * ROW / 2;
      keys.forEach((key, row) => at.set(key, { x: PAD + column * COLUMN + TASK_W / 2, y: PAD + offset + row * ROW + TASK_H / 2 }));
    }
    const width = PAD * 2 + (Math.max(...layer.values()) + 1) * COLUMN;
    return { nodes, edges, at, width, height: PAD * 2 + height * ROW, layer };
  }

  function half(node) {
    if (node.kind === "task") return TASK_W / 2;
    return node.item.implicit ? IMPLICIT_R : PLACE_R;
  }

  function drawNet(view) {
    const { nodes, edges, at, width, height, layer } = layout(view);
    const back = edges.some(([from, to]) => layer.get(to) <= layer.get(from));
    const tall = height + (back ? 40 : 0);
    const svg = el("svg", { width, height: tall, viewBox: `0 0 ${width} ${tall}`, role: "img", "aria-label": `net of ${view.name}` });
    const defs = el("defs");
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6b7280" }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    for (const [from, to] of edges) {
      if (!at.has(from) || !at.has(to)) continue;
      const a = at.get(from), b = at.get(to);
      const x1 = a.x + half(nodes.get(from)), x2 = b.x - half(nodes.get(to));
      let d;
      if (layer.get(to) > layer.get(from)) {
        const mid = (x1 + x2) / 2;
        d = `M ${x1} ${a.y} C ${mid} ${a.y}, ${mid} ${b.y}, ${x2} ${b.y}`;
      } else {  // back to an earlier column: an arc under the net
        const below = height + 20;
        d = `M ${a.x} ${a.y + 14} C ${a.x} ${below}, ${b.x} ${below}, ${b.x} ${b.y + 14}`;
      }
      svg.appendChild(el("path", { d, class: "edge", "marker-end": "url(#arrow)" }));
    }
    for (const [key, node] of nodes) {
      const { x, y } = at.get(key);
      const group = el("g", { "data-node": key });
      if (node.kind === "condition") {
        const c = node.item;
        const r = c.implicit ? IMPLICIT_R : PLACE_R;
        group.appendChild(el("circle", { cx: x, cy: y, r, class: `place${c.implicit ? " implicit" : ""}${c.tokens ? " marked" : ""}` }));
        if (c.tokens === 1) group.appendChild(el("circle", { cx: x, cy: y, r: 4, class: "token" }));
        else if (c.tokens > 1) group.appendChild(el("text", { x, y: y + 4, "text-anchor": "middle" }, String(c.tokens)));
        if (!c.implicit) group.appendChild(el("text", { x, y: y + r + 13, "text-anchor": "middle" }, c.name));
        group.appendChild(el("title", {}, `condition ${c.name}: ${c.tokens} token${c.tokens === 1 ? "" : "s"}`));
      } else {
        const t = node.item;
        group.appendChild(el("rect", { x: x - TASK_W / 2, y: y - TASK_H / 2, width: TASK_W, height: TASK_H, rx: t.kind === "dummy" ? 2 : 6, class: `task t-${t.state}` }));
        const name = t.name.length > 17 ? t.name.slice(0, 16) + "…" : t.name;
        group.appendChild(el("text", { x, y: y - 2, "text-anchor": "middle" }, name));
        group.appendChild(el("text", { x, y: y + 12, "text-anchor": "middle", class: "decor" }, t.state));
        // a join or split named where it decides something: not AND, or more than one way
        if (t.join !== "and" || t.inputs.length > 1) group.appendChild(el("text", { x: x - TASK_W / 2 + 3, y: y - TASK_H / 2 - 3, class: "decor" }, `${t.join}-join`));
        if (t.split !== "and" || t.outputs.length > 1) group.appendChild(el("text", { x: x + TASK_W / 2 - 3, y: y - TASK_H / 2 - 3, "text-anchor": "end", class: "decor" }, `${t.split}-split`));
        const notes = [`task ${t.name} (${t.kind}): ${t.state}`, `join ${t.join}, split ${t.split}`];
        if (t.cancels.length) notes.push(`cancels ${t.cancels.join(", ")}`);
        group.appendChild(el("title", {}, notes.join("\n")));
      }
      svg.appendChild(group);
    }
    return svg;
  }

  return drawNet;
})();
