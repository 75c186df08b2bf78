"""A short soak (benchmarks/soak_watch.py): the watcher follows bursts of adds, edits, renames, moves across
folders and deletes; the library ends equal to the disk, moved photos keep their ids and marks."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import soak_watch


@pytest.mark.slow
def test_the_watcher_keeps_the_library_equal_to_the_disk(tmp_path):
    result = soak_watch.run(minutes=0.25, ops=160, first=40, seed=2, work=tmp_path)
    assert result["total_operations"] >= 150
    assert result["library_equals_disk"], result
    assert result["moved_photos"] > 0 and result["moved_kept_id"] == result["moved_photos"]
    assert result["marks_kept"] == result["marks_made"] > 0
    assert result["samples"] and result["fds"]["max"] < 200
