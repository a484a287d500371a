"""gristmill.apps.console: status lines, widths, quiet mode and the JSON summary."""

import io
import json

from gristmill.apps.console import PIPE_WIDTH, RunConsole, format_status, make_console, run_summary


def test_status_lines_do_not_wrap_when_piped():
    out = io.StringIO()  # not a terminal, like a file or a pipe
    console = make_console(out)
    assert console.width == PIPE_WIDTH
    con = RunConsole(10_000_000, console=console)
    con.status(12.5, 1_234_567, 2345.0, 0.712, sampling="2,501", true_obj=0.712, lag="1.1",
               version=1234)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) > 80, lines
    assert lines[0].startswith("[   12.5s] frames   1,234,567 | fps  2,345 | reward   0.712 | left")
    assert lines[0].endswith("| sampling 2,501 | true_obj 0.712 | lag 1.1 | version 1234")


def test_key_figures_come_first_in_the_same_order():
    line = format_status(1.0, 10, 5.0, None, steps=3, SPS=2.5)
    assert line.startswith("[    1.0s] frames          10 | ")
    fields = [p.split()[0] for p in line.split(" | ")[1:]]
    assert fields == ["fps", "reward", "steps", "SPS"]
    assert "reward     nan" in line  # no episode yet


def test_the_mean_rate_since_the_first_line_stands_beside_the_intervals_rate():
    out = io.StringIO()
    con = RunConsole(10_000, console=make_console(out))
    con.status(10.0, 1_000, 100.0, None)  # the first line: no mean yet
    con.status(15.0, 1_000, 0.0, None)  # a batched learner: an interval with nothing trained
    con.status(20.0, 3_000, 400.0, None)
    lines = out.getvalue().splitlines()
    assert "| fps    100 | " in lines[0] and "mean" not in lines[0]
    assert "| fps      0 (mean 0) | " in lines[1]
    assert "| fps    400 (mean 200) | " in lines[2]  # 2,000 frames in 10 s


def test_time_left_follows_the_frame_rate_and_the_time_budget():
    con = RunConsole(1000, console=make_console(io.StringIO()))
    assert con.time_left(0.0, 0) == float("inf")  # no rate yet
    con.status(10.0, 100, 10.0, None)
    con.status(20.0, 200, 10.0, None)  # 10 frames/s since the first line: 800 frames left
    assert con.time_left(20.0, 200) == 80.0
    timed = RunConsole(1000, seconds=30.0, console=make_console(io.StringIO()))
    timed.status(10.0, 100, 10.0, None)
    timed.status(20.0, 200, 10.0, None)
    assert timed.time_left(20.0, 200) == 10.0  # the wall-time budget ends first
    assert RunConsole(None, console=make_console(io.StringIO())).time_left(5.0, 10) is None


def test_a_population_s_time_left_follows_its_slowest_policy_not_the_sum_of_frames():
    out = io.StringIO()
    con = RunConsole(1000, console=make_console(out))  # every policy trains 1,000 frames
    con.status(10.0, 400, 40.0, None, budget_frames=100)  # two policies: 300 + 100 frames
    con.status(20.0, 1_200, 80.0, None, budget_frames=200)  # 900 + 300: past 1,000 in all
    assert con.time_left(20.0, 200) == 80.0  # the slowest at 10 frames/s, 800 to go
    lines = out.getvalue().splitlines()
    assert "frames       1,200 " in lines[1] and "| left 1:20" in lines[1], lines[1]
    assert "budget" not in lines[1]
    con.status(30.0, 2_000, 80.0, None, budget_frames=1_000)
    assert "| left 0:00" in out.getvalue().splitlines()[2]


def test_quiet_keeps_errors_only():
    out = io.StringIO()
    con = RunConsole(1000, quiet=True, console=make_console(out))
    con.status(1.0, 10, 5.0, 0.1)
    con.print("resumed from somewhere")
    con.print("[red]worker 1 failed: boom[/red]")
    assert out.getvalue().strip() == "worker 1 failed: boom"


def test_summary_is_one_json_line_on_stdout_and_a_file(tmp_path, capsys):
    summary = run_summary(
        "gristmill-test", "doom_basic", "done", 500_123, 245.25, 2041.4, 0.72, 1800,
        {"version": 488, "frames": 1},  # an app key that repeats a head key is left out
    )
    assert list(summary)[:8] == [
        "app", "env", "reason", "frames", "seconds", "fps", "reward_mean_100", "episodes"
    ]
    assert summary["frames"] == 500_123 and summary["version"] == 488
    con = RunConsole(None, console=make_console(io.StringIO()))
    con.summary(summary, str(tmp_path / "exp"))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0]) == summary
    assert json.loads((tmp_path / "exp" / "summary.json").read_text()) == summary
