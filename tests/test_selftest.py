"""`myvlm-desktop --self-test` from the source tree: every stage passes and nothing is left behind; a failing
stage is named with its error and the exit code is 1. (`make package` runs the same self-test on the bundle.)"""

import os
import subprocess
import sys

import pytest

from myvlm_desktop.gui import selftest

STAGES = ("open", "formats", "scan", "index", "cluster", "name", "detect", "ask", "search", "vlm", "train", "caption", "window")


def test_a_failing_stage_is_named_with_its_error_and_stops_the_run(capsys):
    ran = []

    def broken():
        raise ValueError("weights unreadable")

    code = selftest.run_stages([("scan", lambda: ran.append("scan") or "6 photos"), ("train", broken),
                                ("caption", lambda: ran.append("caption") or "")])
    out, err = capsys.readouterr()
    assert code == 1 and ran == ["scan"]
    assert out.startswith("self-test: scan ") and " s  6 photos" in out
    assert "self-test FAILED at stage train: ValueError: weights unreadable" in err


def test_a_stage_that_gives_the_wrong_result_fails_without_a_traceback(capsys):
    def empty():
        selftest.check(False, "0 faces found")

    assert selftest.run_stages([("index", empty)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "self-test FAILED at stage index: StageFailed: 0 faces found"


@pytest.mark.slow
def test_the_self_test_runs_every_stage_and_leaves_nothing_behind(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "myvlm_desktop.gui.app", "--self-test"], check=False,
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("self-test: ")]
    assert [line.split()[1] for line in lines[:-1]] == list(STAGES)
    assert lines[-1].startswith(f"self-test: all {len(STAGES)} stages passed")
    assert "SmolLM2" in next(line for line in lines if line.split()[1] == "ask")
    assert list(scratch.iterdir()) == []  # the library, the tiny model and its caches went with the folder
