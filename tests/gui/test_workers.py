"""The Qt adapters: results and progress arrive in the GUI thread; nothing reaches a view that is gone."""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from myvlm_desktop.gui.workers import JobBridge, run_task, wait_for_tasks
from myvlm_desktop.pipeline.jobs import JobQueue


class _Emitter(QObject):
    value = Signal(int)


def test_emitting_signals_keeps_python_reference_counts_intact(qapp):
    """PySide6 6.12.0 dropped a reference to True on every emit, and Python aborted after enough of them."""
    emitter = _Emitter()
    emitter.value.connect(lambda v: None)
    before = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
    for i in range(200):
        emitter.value.emit(i)
    assert (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)) == before


def test_run_task_works_off_the_gui_thread_and_answers_in_it(qapp, qtbot):
    gui = threading.get_ident()
    seen = {}
    run_task(threading.get_ident, on_done=lambda worker: seen.update(worker=worker, done_in=threading.get_ident()))
    qtbot.waitUntil(lambda: "done_in" in seen)
    assert seen["worker"] != gui and seen["done_in"] == gui

    errors = []
    run_task(lambda: 1 / 0, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors))
    assert isinstance(errors[0], ZeroDivisionError)


def test_a_result_for_a_closed_view_is_dropped(qapp, qtbot):
    label = QLabel()
    gate = threading.Event()
    run_task(gate.wait, 5, on_done=label.setText)  # the owner is the label whose method receives the result
    label.deleteLater()
    qtbot.wait(20)  # the label is gone before the work finishes
    gate.set()
    assert wait_for_tasks(5000)
    qtbot.wait(50)  # delivering to the deleted label would raise "already deleted" here


def test_job_progress_is_throttled_but_state_changes_always_arrive(qapp, qtbot):
    queue = JobQueue()
    bridge = JobBridge(queue, interval=10.0)  # a long interval: only state changes and the last step pass
    views = []
    bridge.updated.connect(views.append)

    def job(control):
        for i in range(1, 501):
            control.progress(i, 500, f"item {i}")

    done = queue.submit("work", fn=job)
    done.wait(10)
    qtbot.waitUntil(lambda: bool(views) and views[-1].state == "done")
    states = [v.state for v in views]
    assert states[0] == "running" and states[-1] == "done"
    assert len(views) < 10  # not 500 signals for 500 steps
    assert any(v.done == 500 for v in views)
