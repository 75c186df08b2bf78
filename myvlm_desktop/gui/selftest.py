"""`myvlm-desktop --self-test`: prove an installed (or frozen) app works end to end, offscreen.

Index a few sample photos (bundled beside a frozen app, else taken from the packages that ship them) and
their mirror images, run face detection and clustering (each face must find its mirrored twin), open the main window on the result, and exit 0; on any failure print what
failed and exit 1.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from PIL import Image, ImageOps

SAMPLES = (("insightface", "data/images/t1.jpg"), ("skimage", "data/astronaut.png"), ("skimage", "data/chelsea.png"))
BUNDLED = "myvlm_desktop_sample"
TIMEOUT_S = 900


def sample_photos() -> list[Path]:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen and (Path(frozen) / BUNDLED).is_dir():
        return sorted(p for p in (Path(frozen) / BUNDLED).iterdir() if p.is_file())
    found = []
    for package, relative in SAMPLES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin and (Path(spec.origin).parent / relative).exists():
            found.append(Path(spec.origin).parent / relative)
    return found


def run(app) -> int:
    from ..pipeline.app import AppSession
    from .main_window import MainWindow

    started = time.monotonic()
    photos = sample_photos()
    if not photos:
        print("self-test: no sample photos found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="myvlm-self-test-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for photo in photos:  # each photo and its mirror image: the same faces twice, so clusters must form
            shutil.copy(photo, folder / photo.name)
            ImageOps.mirror(Image.open(photo).convert("RGB")).save(folder / f"mirrored_{photo.stem}.png")
        session = AppSession(Path(tmp) / "data", watch=False)
        window = MainWindow(session)
        try:
            window.show()
            session.library.add_folder(folder)
            job = session.process_all(("scan", "index", "cluster"))
            while not job.done_event.is_set() and time.monotonic() - started < TIMEOUT_S:
                app.processEvents()
                time.sleep(0.02)
            settle = time.monotonic() + 1.0  # the views refresh a moment after the last change notice
            while time.monotonic() < settle:
                app.processEvents()
                time.sleep(0.02)
            return _report(session, job, window, len(photos), time.monotonic() - started)
        except Exception:  # noqa: BLE001 - the self-test reports every failure and exits non-zero
            traceback.print_exc()
            return 1
        finally:
            window.close()


def _report(session, job, window, expected: int, seconds: float) -> int:
    status = session.library.status()
    problems = []
    if job.status.state != "done":
        problems.append(f"processing ended {job.status.state}: {job.status.error or job.status.message}")
    skipped = [s for s in (job.status.result or []) if s.get("skipped")]
    problems += [f"stage {s['stage']} skipped: {s['skipped']}" for s in skipped if s["stage"] in ("index", "cluster")]
    if status["photos"] != 2 * expected:
        problems.append(f"{status['photos']} of {expected} sample photos indexed")
    if not status["faces"]:
        problems.append("no faces found in the sample group photo")
    if not status["clusters"]:
        problems.append("no face clusters made")
    if window.library_model.total() != status["photos"]:
        problems.append("the library grid does not show the indexed photos")
    print(f"self-test: {status['photos']} photos, {status['faces']} faces, {status['clusters']} clusters "
          f"in {seconds:.1f} s")
    for problem in problems:
        print(f"self-test FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0
