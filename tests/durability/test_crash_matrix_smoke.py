"""A small crash matrix (benchmarks/crash_matrix.py): cluster --full and a run of naming operations with undo
and redo, killed at progress-chosen moments on a library of synthetic faces; nothing lost, resumed, and the
end state equals an uninterrupted run."""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import crash_matrix

from myvlm_desktop.library.store import Library
from tests.people.helpers import add_people


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    data = tmp_path_factory.mktemp("crash") / "base"
    with Library(data) as lib:
        add_people(lib.db, [9, 7, 6, 5, 4, 3, 3, 2], seed=3)
    crash_matrix._must(crash_matrix.cli("cluster")(data))
    crash_matrix._make_decisions(data)
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cluster --full", "naming ops + undo/redo"])
def test_killed_jobs_lose_nothing_and_resume(base, tmp_path, name):
    job = crash_matrix.jobs(None)[name]
    work = tmp_path / "work"
    work.mkdir()
    before = crash_matrix.decisions(base)
    ref = crash_matrix.reference_run(job, base, work)
    result = crash_matrix.kill_chain(job, base, work / "run", ref, kills=3, rng=random.Random(5))
    assert result["problems"] == []
    assert result["kills"] + result["finished_early"] >= 1
    assert (result["lost"], result["unsound"], result["completed"], result["mismatch"]) == (0, 0, True, False)
    if not name.startswith("naming"):
        assert crash_matrix.lost(before, crash_matrix.decisions(work / "run")) == []


def test_naming_check_reads_an_undo_then_redo_state_as_the_earliest_step_it_stands_for():
    # After step 21 the library is in the same state as after step 23 (22 undoes 21's operation, 23 redoes
    # it). Read at that state, then killed once step 22 is committed: nothing is lost.
    assert crash_matrix.naming_lost([21, 23], [22]) == []
    assert crash_matrix.naming_lost([22], [21, 23]) == []  # 23: the redo was committed
    assert crash_matrix.naming_lost([24], [21, 23]) != []  # back before a step the user had reached
    assert crash_matrix.naming_lost([5], []) != []         # a state the uninterrupted run never passes through
    assert crash_matrix.naming_lost([], [3]) != []
