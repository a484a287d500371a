"""Plot a `gristmill-atari train` run's learning curve from its TensorBoard scalars.

    .venv/bin/python bench/atari_curve.py RUN_DIR [--target 18] [--out bench/results/pong_curve]

RUN_DIR is ``train_dir/experiment`` (it holds ``tb/``). Writes OUT.png and OUT.json: the
100-episode mean return against emulator frames (agent steps x frameskip 4), and the first
frame count where it reached --target.
"""

from __future__ import annotations

import argparse
import json
import os

from gristmill.apps.curves import read_curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--target", type=float, default=18.0)
    p.add_argument("--out", default="bench/results/pong_curve")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = read_curve(args.run_dir)  # frames = agent steps x frame skip 4
    curve = sorted(dict(zip(c.frames.tolist(), c.reward.tolist(), strict=True)).items())
    reached = next((f for f, v in curve if v >= args.target), None)
    out = {
        "run_dir": args.run_dir,
        "target": args.target,
        "frames_to_target": reached,
        "final_frames": curve[-1][0],
        "final_return": curve[-1][1],
        "curve": curve,
    }
    with open(args.out + ".json", "w") as f:
        json.dump(out, f, indent=1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([f for f, _ in curve], [v for _, v in curve], lw=1.5)
    ax.axhline(args.target, color="grey", ls="--", lw=1)
    ax.set_xlabel("emulator frames (frameskip 4 counted)")
    ax.set_ylabel("mean episodic return (last 100 episodes)")
    ax.set_title(f"gristmill-atari PPO, {os.path.basename(args.run_dir.rstrip('/'))}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=110)
    print(json.dumps({k: v for k, v in out.items() if k != "curve"}))


if __name__ == "__main__":
    main()
