// The Generals board as an HTML table, shared by the replay viewer and the play page.
//
// A view of the board is three flat arrays of h*w cells (row-major):
//   kind:  0 plain, 1 mountain, 2 city, 3 general (the engine's terrain codes),
//          4 fog, 5 fog obstacle (a mountain or a city under fog: indistinguishable);
//   owner: -1 neutral, 0 red, 1 blue (only for visible cells);
//   army:  the army shown (0 under fog).
// Board.draw touches only the cells whose look changed, so scrubbing a long game stays smooth.
"use strict";

const KINDS = ["plain", "mountain", "city", "general", "fog", "fog-obstacle"];
const K_PLAIN = 0, K_MOUNTAIN = 1, K_CITY = 2, K_GENERAL = 3, K_FOG = 4, K_FOG_OBSTACLE = 5;
const DIRS = [[-1, 0], [1, 0], [0, -1], [0, 1]];  // up, down, left, right (the engine's order)
const DIR_NAMES = ["up", "down", "left", "right"];
const DIR_ARROWS = ["\u2191", "\u2193", "\u2190", "\u2192"];
const PLAYER_NAMES = ["red", "blue"];

// The engine's compact cell codes (envs/generals/encoding.py) -> [kind, owner relative to me].
const CODE_VIEW = [
  [K_FOG, -1], [K_FOG_OBSTACLE, -1], [K_MOUNTAIN, -1], [K_PLAIN, -1], [K_CITY, -1],
  [K_PLAIN, 0], [K_CITY, 0], [K_GENERAL, 0], [K_PLAIN, 1], [K_CITY, 1], [K_GENERAL, 1],
];

// One player's compact observation (code | army << 4 per cell) as a view; me = that player.
function viewFromCodes(cells, me) {
  const n = cells.length;
  const v = {kind: new Int8Array(n), owner: new Int8Array(n), army: new Int32Array(n)};
  for (let i = 0; i < n; i++) {
    const [k, rel] = CODE_VIEW[cells[i] & 15];
    v.kind[i] = k;
    v.owner[i] = rel < 0 ? -1 : (rel === 0 ? me : 1 - me);
    v.army[i] = cells[i] >> 4;
  }
  return v;
}

// Cells player p sees: its own cells and their 8 neighbours (the engine's vision rule).
function visibleTo(owner, h, w, p) {
  const vis = new Uint8Array(h * w);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      if (owner[r * w + c] !== p) continue;
      for (let dr = -1; dr <= 1; dr++) {
        const rr = r + dr;
        if (rr < 0 || rr >= h) continue;
        for (let dc = -1; dc <= 1; dc++) {
          const cc = c + dc;
          if (cc >= 0 && cc < w) vis[rr * w + cc] = 1;
        }
      }
    }
  }
  return vis;
}

// The full state (terrain, owner, army) as seen by player `p` (null: everything visible).
function viewFromState(terrain, owner, army, h, w, p) {
  const n = h * w;
  const v = {kind: new Int8Array(n), owner: new Int8Array(n), army: new Int32Array(n)};
  const vis = p === null ? null : visibleTo(owner, h, w, p);
  for (let i = 0; i < n; i++) {
    if (vis !== null && !vis[i]) {
      const t = terrain[i];
      v.kind[i] = t === K_MOUNTAIN || t === K_CITY ? K_FOG_OBSTACLE : K_FOG;
      v.owner[i] = -1;
      v.army[i] = 0;
    } else {
      v.kind[i] = terrain[i];
      v.owner[i] = terrain[i] === K_MOUNTAIN ? -1 : owner[i];
      v.army[i] = army[i];
    }
  }
  return v;
}

class Board {
  // table: a <table> element; onClick(row, col) is called when a cell is clicked.
  constructor(table, h, w, onClick) {
    this.h = h;
    this.w = w;
    this.table = table;
    this.cells = [];
    this.looks = [];
    table.textContent = "";
    table.classList.add("board");
    for (let r = 0; r < h; r++) {
      const tr = table.insertRow();
      for (let c = 0; c < w; c++) {
        const td = tr.insertCell();
        td.dataset.r = r;
        td.dataset.c = c;
        if (onClick) td.addEventListener("mousedown", () => onClick(r, c));
        this.cells.push(td);
        this.looks.push("");
      }
    }
  }

  // view: {kind, owner, army}; marks: {arrows: Map(cell -> [dirs...]), selected: cell, half}
  draw(view, marks) {
    const arrows = (marks && marks.arrows) || new Map();
    const sel = marks && marks.selected !== undefined ? marks.selected : -1;
    for (let i = 0; i < this.cells.length; i++) {
      const k = view.kind[i], o = view.owner[i], a = view.army[i];
      let cls = "c " + KINDS[k];
      if (o >= 0 && k !== K_MOUNTAIN && k < K_FOG) cls += " p" + o;
      else if ((k === K_CITY || k === K_PLAIN) && o < 0) cls += " neutral";
      if (i === sel) cls += marks.half ? " selected half" : " selected";
      const text = a > 0 && k !== K_MOUNTAIN && k < K_FOG ? String(a) : "";
      const arr = arrows.get(i);
      const html = arr ? arr.map(d => `<i class="arrow d${d}"></i>`).join("") : "";
      const look = cls + "|" + text + "|" + html;
      if (look === this.looks[i]) continue;
      this.looks[i] = look;
      const td = this.cells[i];
      td.className = cls;
      td.innerHTML = html;
      if (text) td.insertBefore(document.createTextNode(text), td.firstChild);
    }
  }

  // What the table shows, read back from the DOM: {kind, owner, army} as plain arrays.
  shown() {
    const kind = [], owner = [], army = [];
    for (const td of this.cells) {
      const k = KINDS.findIndex(name => td.classList.contains(name));
      kind.push(k);
      owner.push(td.classList.contains("p0") ? 0 : td.classList.contains("p1") ? 1 : -1);
      army.push(td.textContent ? parseInt(td.textContent, 10) : 0);
    }
    return {kind, owner, army};
  }
}

// The score table: one row per player with army and land, largest army first (as generals.io).
function drawScores(tbody, names, army, land) {
  const order = [0, 1].sort((a, b) => army[b] - army[a] || a - b);
  tbody.innerHTML = order.map(p =>
    `<tr class="p${p}" data-player="${p}"><td class="name">${escapeHtml(names[p])}</td>` +
    `<td class="army">${army[p]}</td><td class="land">${land[p]}</td></tr>`).join("");
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, ch => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;"}[ch]));
}

// A clicked button gives the focus back, so space and arrow keys keep driving the page
// instead of pressing that button again.
document.addEventListener("click", e => {
  if (e.target instanceof HTMLButtonElement) e.target.blur();
});
