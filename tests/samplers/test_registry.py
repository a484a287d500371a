"""Task resolution errors: an id whose provider cannot be imported says what is missing."""

import subprocess
import sys
import textwrap


def test_a_task_whose_provider_cannot_import_names_the_missing_module_and_extra():
    # A fresh interpreter where OpenCV (part of the 'envs' extra) cannot be imported, as on an
    # install without that extra: sys.modules[name] = None makes `import cv2` fail.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["cv2"] = None
        from gristmill.samplers.registry import resolve
        assert resolve("CartPole-v1").kind == "gymnasium"  # other tasks still resolve
        try:
            resolve("Pong-v5")
        except ValueError as e:
            print(e)
        else:
            raise SystemExit("Pong-v5 resolved without OpenCV")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    message = run.stdout
    assert "unknown task 'Pong-v5'" in message
    assert "gristmill.envs.atari cannot be imported: module 'cv2' is missing" in message
    assert "pip install 'gristmill[envs]'" in message
