// The replay viewer: expands a game's state diffs into per-tick arrays once, then seeking any
// tick is one table update. Exposed for scripts and tests as window.gm.
"use strict";

const SPEEDS = [1, 2, 4, 8, 16, 32, 64];  // ticks per second (generals.io plays 2)

// Per-tick owner/army arrays from the start state and each tick's [cell, owner, army] diffs;
// per-tick land and army totals for both players.
function expandGame(g) {
  const n = g.h * g.w, T = g.num_ticks;
  const owner = new Int8Array((T + 1) * n), army = new Int32Array((T + 1) * n);
  owner.set(g.owner0);
  army.set(g.army0);
  for (let t = 1; t <= T; t++) {
    owner.copyWithin(t * n, (t - 1) * n, t * n);
    army.copyWithin(t * n, (t - 1) * n, t * n);
    const d = g.diffs[t - 1];
    for (let k = 0; k < d.length; k += 3) {
      owner[t * n + d[k]] = d[k + 1];
      army[t * n + d[k]] = d[k + 2];
    }
  }
  const land = [new Int32Array(T + 1), new Int32Array(T + 1)];
  const armyTotal = [new Int32Array(T + 1), new Int32Array(T + 1)];
  for (let t = 0; t <= T; t++) {
    for (let i = t * n; i < (t + 1) * n; i++) {
      const o = owner[i];
      if (o >= 0) {
        land[o][t] += 1;
        armyTotal[o][t] += army[i];
      }
    }
  }
  return {owner, army, land, armyTotal};
}

class Viewer {
  constructor() {
    this.el = id => document.getElementById(id);
    this.index = JSON.parse(this.el("games").textContent);
    this.game = null;
    this.tick = 0;
    this.view = null;  // null: full board; 0/1: that player's fog of war
    this.playing = false;
    this.speed = 4;
    this.timer = null;
    this.bindControls();
    if (this.index.length === 1) {
      this.el("list").hidden = true;
      this.load(0);
    } else {
      this.showList();
    }
  }

  bindControls() {
    const el = this.el;
    el("slider").addEventListener("input", e => this.seek(parseInt(e.target.value, 10)));
    el("play").addEventListener("click", () => this.toggle());
    el("back").addEventListener("click", () => this.seek(this.tick - 1));
    el("forward").addEventListener("click", () => this.seek(this.tick + 1));
    el("first").addEventListener("click", () => this.seek(0));
    el("last").addEventListener("click", () => this.seek(this.game.num_ticks));
    el("speed").innerHTML = SPEEDS.map(s => `<option value="${s}">${s} ticks/s</option>`).join("");
    el("speed").value = String(this.speed);
    el("speed").addEventListener("change", e => this.setSpeed(parseInt(e.target.value, 10)));
    for (const b of document.querySelectorAll("#views button")) {
      b.addEventListener("click", () => this.setView(b.dataset.view === "" ? null
        : parseInt(b.dataset.view, 10)));
    }
    el("back-to-list").addEventListener("click", () => this.showList());
    document.addEventListener("keydown", e => {
      if (!this.game || e.target.tagName === "SELECT") return;
      const keys = {" ": () => this.toggle(), "ArrowLeft": () => this.seek(this.tick - 1),
        "ArrowRight": () => this.seek(this.tick + 1), "Home": () => this.seek(0),
        "End": () => this.seek(this.game.num_ticks), "f": () => this.setView(null),
        "1": () => this.setView(0), "2": () => this.setView(1)};
      if (keys[e.key]) {
        keys[e.key]();
        e.preventDefault();
      }
    });
  }

  showList() {
    this.pause();
    this.el("game").hidden = true;
    this.el("list").hidden = false;
    this.el("back-to-list").hidden = this.index.length === 1;
    this.el("list-body").innerHTML = this.index.map((g, k) =>
      `<tr data-game="${k}"><td><a href="#">${escapeHtml(g.name)}</a></td>` +
      `<td class="p0">${escapeHtml(g.players[0])}</td><td class="p1">${escapeHtml(g.players[1])}</td>` +
      `<td>${escapeHtml(g.result)}</td><td>${g.num_ticks}</td></tr>`).join("");
    for (const tr of this.el("list-body").rows) {
      tr.addEventListener("click", e => {
        e.preventDefault();
        this.load(parseInt(tr.dataset.game, 10));
      });
    }
  }

  load(k) {
    this.pause();
    const g = JSON.parse(this.el("game-" + k).textContent);
    this.game = g;
    this.states = expandGame(g);
    this.board = new Board(this.el("board"), g.h, g.w, null);
    this.el("list").hidden = true;
    this.el("game").hidden = false;
    this.el("back-to-list").hidden = this.index.length === 1;
    this.el("title").textContent = `${g.name}: ${g.players[0]} (red) vs ${g.players[1]} (blue)`;
    this.el("result").textContent = g.result;
    this.el("slider").max = String(g.num_ticks);
    const views = document.querySelectorAll("#views button");
    views[1].textContent = `${g.players[0]} (red)`;
    views[2].textContent = `${g.players[1]} (blue)`;
    this.chart = new Chart(this.el("chart"), this.states, g.num_ticks);
    this.tick = -1;
    this.seek(0);
  }

  // The full state at tick t: {terrain, owner, army} (views into the expanded arrays).
  stateAt(t) {
    const n = this.game.h * this.game.w;
    return {terrain: this.game.terrain, owner: this.states.owner.subarray(t * n, (t + 1) * n),
      army: this.states.army.subarray(t * n, (t + 1) * n)};
  }

  seek(t) {
    const g = this.game;
    t = Math.max(0, Math.min(g.num_ticks, t | 0));
    this.tick = t;
    const s = this.stateAt(t);
    this.shownView = viewFromState(s.terrain, s.owner, s.army, g.h, g.w, this.view);
    this.board.draw(this.shownView, {arrows: this.moveArrows(t)});
    this.el("slider").value = String(t);
    this.el("tick").textContent = `tick ${t} / ${g.num_ticks} (turn ${Math.floor(t / 2)})`;
    drawScores(this.el("scores-body"), g.players,
      [this.states.armyTotal[0][t], this.states.armyTotal[1][t]],
      [this.states.land[0][t], this.states.land[1][t]]);
    this.el("moves").innerHTML = this.moveText(t);
    this.chart.draw(t);
    if (t >= g.num_ticks) this.pause();
  }

  // The moves that led to tick t (recorded at tick t - 1) as arrows on their source cells;
  // under fog only the moves whose source the viewing player can see.
  moveArrows(t) {
    const arrows = new Map();
    if (t === 0) return arrows;
    const g = this.game;
    for (let p = 0; p < 2; p++) {
      const a = g.actions.slice((t - 1) * 10 + p * 5, (t - 1) * 10 + p * 5 + 5);
      if (a[0] === 1 || g.status[(t - 1) * 2 + p] !== 1) continue;
      const i = a[1] * g.w + a[2];
      if (this.view !== null && this.shownView.kind[i] >= K_FOG) continue;
      arrows.set(i, (arrows.get(i) || []).concat([a[3]]));
    }
    return arrows;
  }

  moveText(t) {
    if (t === 0) return "<div>start</div>";
    const g = this.game;
    const status = ["passed", "moved", "invalid (counted as a pass)", "skipped (game over)"];
    let html = "";
    for (let p = 0; p < 2; p++) {
      const a = g.actions.slice((t - 1) * 10 + p * 5, (t - 1) * 10 + p * 5 + 5);
      const st = g.status[(t - 1) * 2 + p];
      const what = a[0] === 1 ? "pass" : `(${a[1]}, ${a[2]}) ${DIR_ARROWS[a[3]]} ` +
        `${DIR_NAMES[a[3]]}${a[4] ? " half" : ""}`;
      html += `<div class="p${p}" data-player="${p}" data-status="${st}">` +
        `${escapeHtml(g.players[p])}: ${what}, ${status[st]}</div>`;
    }
    return html;
  }

  setView(v) {
    this.view = v;
    for (const b of document.querySelectorAll("#views button")) {
      b.classList.toggle("on", b.dataset.view === (v === null ? "" : String(v)));
    }
    this.seek(this.tick);
  }

  setSpeed(s) {
    this.speed = s;
    this.el("speed").value = String(s);
    if (this.playing) {
      this.pause();
      this.play();
    }
  }

  play() {
    if (this.playing) return;
    if (this.tick >= this.game.num_ticks) this.seek(0);
    this.playing = true;
    this.el("play").textContent = "pause";
    this.timer = setInterval(() => this.seek(this.tick + 1), 1000 / this.speed);
  }

  pause() {
    this.playing = false;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.el("play").textContent = "play";
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }
}

// Army (solid) and land (dashed) of both players over the game, with the current tick marked.
class Chart {
  constructor(canvas, states, T) {
    this.canvas = canvas;
    this.T = T;
    this.base = document.createElement("canvas");
    this.base.width = canvas.width;
    this.base.height = canvas.height;
    const ctx = this.base.getContext("2d");
    const W = canvas.width, H = canvas.height, pad = 4;
    const colours = ["#e23c3c", "#2d7ff9"];
    ctx.fillStyle = "#2a2a2a";
    ctx.fillRect(0, 0, W, H);
    const series = [[states.armyTotal, []], [states.land, [4, 3]]];
    for (const [data, dash] of series) {
      let max = 1;
      for (const arr of data) for (const x of arr) max = Math.max(max, x);
      ctx.setLineDash(dash);
      for (let p = 0; p < 2; p++) {
        ctx.strokeStyle = colours[p];
        ctx.beginPath();
        for (let t = 0; t <= T; t++) {
          const x = pad + (W - 2 * pad) * (T ? t / T : 0);
          const y = H - pad - (H - 2 * pad) * data[p][t] / max;
          if (t === 0) ctx.moveTo(x, y);
          else ctx.lineTo(x, y);
        }
        ctx.stroke();
      }
    }
    ctx.setLineDash([]);
    ctx.fillStyle = "#bbb";
    ctx.font = "10px sans-serif";
    ctx.fillText("army \u2014  land - -", pad + 2, pad + 9);
  }

  draw(t) {
    const ctx = this.canvas.getContext("2d");
    ctx.drawImage(this.base, 0, 0);
    const x = 4 + (this.canvas.width - 8) * (this.T ? t / this.T : 0);
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, this.canvas.height);
    ctx.stroke();
  }
}

window.addEventListener("DOMContentLoaded", () => {
  window.gm = new Viewer();
  window.gm.ready = true;
});
