"""gristmill.apps.curves: reward curves from TensorBoard logs, drawn to a PNG."""

import pytest
from gristmill.apps.curves import plot_curves, read_curve
from torch.utils.tensorboard import SummaryWriter


def write_session(run_dir, tag, points, start):
    """One trainer session: a TensorBoard event file with ``(step, reward)`` logged 10 s apart
    from wall time ``start``."""
    w = SummaryWriter(str(run_dir / "tb"))
    w.add_scalar("perf/fps", 100.0, points[0][0], walltime=start)
    for i, (step, value) in enumerate(points):
        w.add_scalar(tag, value, step, walltime=start + 10.0 * (i + 1))
    w.close()


def test_a_resumed_run_reads_as_one_curve_without_the_pause(tmp_path):
    run = tmp_path / "doom_basic"
    write_session(run, "episode/reward", [(1000, -1.0), (2000, -0.5)], start=1_000.0)
    write_session(run, "episode/reward", [(3000, 0.2), (4000, 0.7)], start=90_000.0)  # resumed
    c = read_curve(str(run))
    assert c.name == "doom_basic"
    assert c.frames.tolist() == [1000, 2000, 3000, 4000]
    assert c.reward.tolist() == pytest.approx([-1.0, -0.5, 0.2, 0.7])
    # 20 s per session, the 24 h between them not counted
    assert c.seconds.tolist() == pytest.approx([10.0, 20.0, 30.0, 40.0])


def test_atari_returns_are_read_against_frames(tmp_path):
    run = tmp_path / "Pong-v5"
    write_session(run, "charts/episodic_return", [(1024, -21.0), (2048, -20.0)], start=0.0)
    assert read_curve(str(run)).frames.tolist() == [4096, 8192]  # agent steps x frame skip 4


def test_plot_writes_a_png_overlaying_runs(tmp_path):
    for name, final in (("a", 0.7), ("b", 0.6)):
        write_session(tmp_path / name, "episode/reward", [(1000, -1.0), (2000, final)], 0.0)
    out = tmp_path / "plots" / "curves.png"
    assert plot_curves([str(tmp_path / "a"), str(tmp_path / "b")], str(out)) == str(out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_a_directory_without_logs_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TensorBoard events"):
        read_curve(str(tmp_path))
    write_session(tmp_path / "r", "perf/only", [(1, 1.0)], 0.0)
    with pytest.raises(ValueError, match="no reward scalar"):
        read_curve(str(tmp_path / "r"))
