"""Smoke tests of the gristmill-speed app (tiny settings; figures live in BENCHMARKS.md)."""

import json
import os
import subprocess
import sys

import pytest


def _run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "gristmill.apps.speed_runner", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_help():
    out = _run("--help")
    assert out.returncode == 0 and "--autotune" in out.stdout and "--load" in out.stdout


@pytest.mark.parametrize("task", ["Pong-v5", "Hopper-v5"])
def test_table_json_and_chart(tmp_path, task):
    prefix = tmp_path / "speed"
    out = _run("--tasks", task, "--systems", "raw,gym-single,gristmill-sync,gristmill-async",
               "--num-envs", "4", "--seconds", "0.2", "--warmup", "0.05", "--repeats", "1",
               "--cores", "2", "--out", str(prefix), "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads((prefix.with_suffix(".json")).read_text())
    rows = data["results"]
    assert {r["system"] for r in rows} == {"raw", "gym-single", "gristmill-sync",
                                           "gristmill-async"}
    for r in rows:
        assert "error" not in r, r
        assert r["steps_per_s"] > 0 and r["steps_per_cpu_s"] > 0
        # frames = steps x frame skip (Pong 4, Hopper 4)
        assert r["frames_per_s"] == pytest.approx(r["steps_per_s"] * 4)
        assert 0 < r["of_limit"] and r["limit_steps_per_s"] > 0
    assert os.path.getsize(prefix.with_suffix(".png")) > 1000
    assert "steps/s" in out.stdout


def test_autotune(tmp_path):
    prefix = tmp_path / "tune"
    out = _run("--autotune", "Hopper-v5", "--num-envs", "2,4", "--seconds", "0.05", "--cores", "1",
               "--out",
               str(prefix), "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(prefix.with_suffix(".autotune.json").read_text())
    assert len(res) == 10  # n=2: b in {2,1}; n=4: b in {4,2,1}; each with w in {1,2}
    assert res[0]["steps_per_s"] == max(r["steps_per_s"] for r in res)
    assert "best: gristmill.samplers.make('Hopper-v5'" in out.stdout


def test_both_pools_get_the_same_config_grid():
    from gristmill.apps.speed_runner import configs

    got = configs("Ant-v5", ["envpool-async", "gristmill-async", "gristmill-sync"], [8, 12],
                  2, True, batches=(2, 3), workers=[2, 3])
    ep = {c[1:] for c in got if c[0] == "envpool-async"}
    gm = {c[1:] for c in got if c[0] == "gristmill-async"}
    # 8 envs: 2 batches in flight (8 % 3 != 0); 12 envs: 2 or 3; each with 2 and 3 workers
    assert ep == gm == {(8, 4, 2), (8, 4, 3), (12, 6, 2), (12, 6, 3), (12, 4, 2), (12, 4, 3)}
    assert {c[1:] for c in got if c[0] == "gristmill-sync"} == {
        (8, 8, 2), (8, 8, 3), (12, 12, 2), (12, 12, 3)}
    default = configs("Ant-v5", ["envpool-sync", "gristmill-sync"], [8], 2, True)
    assert default == [("envpool-sync", 8, 8, 0), ("gristmill-sync", 8, 8, 2)]


def test_interleaved_windows_alternate_between_configurations(monkeypatch):
    """Round r measures every configuration once before round r + 1 starts, so a drift of
    the machine's speed lands on every system alike; a driver that fails is one error row."""
    from gristmill.apps import speed_runner as sr

    order: list[str] = []

    def recorder(name):
        def driver(task, n, b, w):
            def step():
                if not order or order[-1] != name:
                    order.append(name)
            return step, b, lambda: None
        return driver

    def broken(task, n, b, w):
        raise RuntimeError("no such pool")

    monkeypatch.setitem(sr.DRIVERS, "a", recorder("a"))
    monkeypatch.setitem(sr.DRIVERS, "b", recorder("b"))
    monkeypatch.setitem(sr.DRIVERS, "bad", broken)
    rows = sr.measure_interleaved("CartPole-v1", [("a", 4, 4, 0), ("bad", 4, 4, 0),
                                                  ("b", 4, 2, 0)],
                                  seconds=0.02, warmup=0.01, repeats=3)
    assert order == ["a", "b"] + ["a", "b"] * 3  # warm-ups, then three alternating rounds
    by = {r["system"]: r for r in rows}
    assert "no such pool" in by["bad"]["error"]
    assert len(by["a"]["runs"]) == len(by["b"]["runs"]) == 3
    assert by["b"]["batch_size"] == 2 and by["b"]["steps_per_s"] > 0
