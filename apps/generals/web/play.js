// The play page: one game per websocket against the server's bot. The board is the player's
// fogged view as the engine computes it (compact cell codes); moves are queued on the server
// and executed one per tick, like generals.io's move queue. Exposed as window.gm.
"use strict";

const KEY_DIRS = {ArrowUp: 0, w: 0, W: 0, ArrowDown: 1, s: 1, S: 1, ArrowLeft: 2, a: 2, A: 2,
  ArrowRight: 3, d: 3, D: 3};

class Play {
  constructor() {
    this.el = id => document.getElementById(id);
    this.errors = [];
    this.dropped = [];
    this.state = null;
    this.over = null;
    this.queue = [];
    this.selected = -1;
    this.half = false;
    this.started = null;
    this.closed = false;
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    this.ws = new WebSocket(proto + location.host + "/ws");
    this.ws.onmessage = e => this.receive(JSON.parse(e.data));
    this.ws.onclose = () => {
      this.closed = true;
      this.say("disconnected from the server (reload to play again)", true);
    };
    document.addEventListener("keydown", e => this.key(e));
    // leaving the page ends its game now (a page kept in the back/forward cache would not)
    window.addEventListener("pagehide", () => this.ws.close(1000, "page closed"));
    this.el("step").addEventListener("click", () => this.send({type: "step"}));
    this.el("again").addEventListener("click", () => this.send({type: "new_game"}));
  }

  send(msg) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  say(text, error) {
    const s = this.el("status");
    s.textContent = text;
    s.className = error ? "error" : "";
  }

  receive(m) {
    if (m.type === "start") this.start(m);
    else if (m.type === "state") this.update(m);
    else if (m.type === "queue") {
      this.queue = m.queue;
      this.redraw();
    } else if (m.type === "over") this.end(m);
    else if (m.type === "error") {
      this.errors.push(m.message);
      this.say(m.message, true);
    }
  }

  start(m) {
    this.started = m;
    this.me = m.me;
    this.over = null;
    this.state = null;
    this.queue = [];
    this.selected = -1;
    this.half = false;
    this.board = new Board(this.el("board"), m.h, m.w, (r, c) => this.click(r, c));
    this.el("opponent").textContent = m.players[1 - m.me];
    this.el("step").hidden = !m.turn_based;
    this.el("turn-help").hidden = !m.turn_based;
    this.el("overlay").hidden = true;
    this.say(m.turn_based ? "turn-by-turn: queue moves, then space for the next tick" : "");
  }

  update(m) {
    this.state = m;
    this.queue = m.queue;
    this.view = viewFromCodes(m.cells, this.me);
    const sc = m.scalars;  // own land, own army, enemy land, enemy army, tick
    const army = [0, 0], land = [0, 0];
    army[this.me] = sc[1];
    land[this.me] = sc[0];
    army[1 - this.me] = sc[3];
    land[1 - this.me] = sc[2];
    drawScores(this.el("scores-body"), this.started.players, army, land);
    this.el("tick").textContent = `tick ${m.tick} (turn ${Math.floor(m.tick / 2)})`;
    if (m.dropped.length) {
      this.dropped.push(...m.dropped);
      this.say("move dropped: " + m.dropped.map(d => d.reason).join("; "), true);
    }
    this.redraw();
  }

  redraw() {
    if (!this.view) return;
    this.el("queue-length").textContent = String(this.queue.length);
    const arrows = new Map();
    for (const [r, c, d] of this.queue) {
      const i = r * this.started.w + c;
      arrows.set(i, (arrows.get(i) || []).concat([d]));
    }
    this.board.draw(this.view, {arrows, selected: this.selected, half: this.half});
  }

  end(m) {
    this.over = m;
    const text = {win: "You won!", loss: "You lost.", draw: "Draw (the tick limit was reached)."};
    this.el("result").textContent = text[m.result] || m.result;
    this.el("replay").innerHTML = m.replay ? `replay: <a href="${escapeHtml(m.replay_url)}" ` +
      `target="_blank">${escapeHtml(m.replay)}</a>` : "";
    this.el("overlay").hidden = false;
  }

  click(r, c) {
    if (!this.view || this.over) return;
    const i = r * this.started.w + c;
    if (i === this.selected) {
      this.half = !this.half;
    } else if (this.view.owner[i] === this.me && this.view.kind[i] < K_FOG) {
      this.selected = i;
      this.half = false;
    } else {
      this.selected = -1;
    }
    this.redraw();
  }

  key(e) {
    if (e.key === "Enter" && this.over) {
      this.send({type: "new_game"});
    } else if (e.key === " ") {
      if (this.started && this.started.turn_based) this.send({type: "step"});
    } else if (e.key === "z" || e.key === "Z") {
      this.half = !this.half;
      this.redraw();
    } else if (e.key === "q" || e.key === "Q") {
      this.send({type: "clear"});
    } else if (e.key === "e" || e.key === "E") {
      this.send({type: "undo"});
    } else if (e.key in KEY_DIRS && this.selected >= 0 && this.view) {
      const w = this.started.w, h = this.started.h, d = KEY_DIRS[e.key];
      const r = Math.floor(this.selected / w), c = this.selected % w;
      const r2 = r + DIRS[d][0], c2 = c + DIRS[d][1];
      if (r2 < 0 || r2 >= h || c2 < 0 || c2 >= w) return;
      this.send({type: "move", row: r, col: c, dir: DIR_NAMES[d], half: this.half});
      // the selection follows the army, so a path is a chain of arrow keys (as generals.io)
      if (this.view.kind[r2 * w + c2] !== K_MOUNTAIN) this.selected = r2 * w + c2;
      this.half = false;
      this.redraw();
    } else {
      return;
    }
    e.preventDefault();
  }
}

window.addEventListener("DOMContentLoaded", () => {
  window.gm = new Play();
});
