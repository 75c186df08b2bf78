"""`myvlm-desktop --self-test`: prove an installed (or frozen) app does what a user does with it, offscreen.

Every stage runs the way the app runs it, with the main window open: the process job for scan, index,
cluster, heads and detection, and caption; the people operation the People page calls to name a cluster;
the library question the chat panel asks (phrased by the bundled SmolLM2); the window's own search; the
train job the Concepts page submits. No VLM weights ship with the app, so the VLM stages build a tiny
random model of the default backend's class (SmolVLM, an Idefics3 model) in the temporary folder and point
the settings at it: the loader, training and captioning code a downloaded model goes through. Nothing is
left behind: the library, the tiny model and every cache live in one temporary folder.

Each stage prints one line with its time; a failure names the stage and the error, and the exit code is 1.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

SAMPLES = (("insightface", "data/images/t1.jpg"), ("skimage", "data/astronaut.png"), ("skimage", "data/chelsea.png"))
BUNDLED = "myvlm_desktop_sample"
STAGE_TIMEOUT_S = 900
TRAIN_STEPS = 20  # a check that training runs end to end, not a useful embedding (the app's default is 100)
NAME = "Alice"


class StageFailed(Exception):
    """A stage ran but did not give what the app needs; the message says what was wrong."""


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


def run_stages(stages: list[tuple[str, Callable[[], str]]]) -> int:
    """Run the stages in order, one line each; stop at the first failure. 0 when all passed, else 1."""
    started = time.monotonic()
    for name, stage in stages:
        t0 = time.monotonic()
        try:
            detail = stage()
        except Exception as exc:  # noqa: BLE001 - the self-test reports every failure and exits non-zero
            if not isinstance(exc, StageFailed):
                traceback.print_exc()
            print(f"self-test FAILED at stage {name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"self-test: {name:<9} {time.monotonic() - t0:6.1f} s  {detail}", flush=True)
    print(f"self-test: all {len(stages)} stages passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


def run(app) -> int:
    photos = sample_photos()
    if not photos:
        print("self-test FAILED at stage setup: no sample photos found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="myvlm-self-test-") as tmp:
        test = SelfTest(app, Path(tmp), photos)
        saved = tempfile.tempdir, os.environ.get("TMPDIR")
        # what the libraries put in the temporary folder (torch's compile cache...) goes with ours
        tempfile.tempdir = os.environ["TMPDIR"] = str(Path(tmp) / "tmp")
        Path(tempfile.tempdir).mkdir()
        try:
            code = run_stages(test.stages())
        finally:
            test.close()
            tempfile.tempdir = saved[0]
            if saved[1] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved[1]
    if Path(tmp).exists():
        print(f"self-test FAILED at stage cleanup: {tmp} remains", file=sys.stderr)
        return 1
    return code


def check(condition, message: str) -> None:
    if not condition:
        raise StageFailed(message)


class SelfTest:
    """The stages, sharing one library, one session and one main window in the temporary folder `root`."""

    def __init__(self, app, root: Path, photos: list[Path]):
        self.app, self.root, self.photos = app, root, photos
        self.session = self.window = None
        self.concept_id: int | None = None

    def stages(self) -> list[tuple[str, Callable[[], str]]]:
        return [("open", self.open), ("formats", self.formats), ("scan", self.scan), ("index", self.index), ("cluster", self.cluster),
                ("name", self.name), ("detect", self.detect), ("ask", self.ask), ("search", self.search),
                ("vlm", self.tiny_vlm), ("train", self.train), ("caption", self.caption), ("window", self.show)]

    # -- helpers ------------------------------------------------------------------------------------------
    def pump(self, until: Callable[[], bool], what: str, timeout: float = STAGE_TIMEOUT_S) -> None:
        """Keep the window painting (as the app's event loop does) until `until()` holds."""
        end = time.monotonic() + timeout
        while not until():
            if time.monotonic() > end:
                raise StageFailed(f"{what}: not done after {timeout:.0f} s")
            self.app.processEvents()
            time.sleep(0.02)

    def settle(self, seconds: float = 0.5) -> None:
        end = time.monotonic() + seconds  # the views refresh a moment after a change notice
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.02)

    def wait(self, job) -> object:
        self.pump(job.done_event.is_set, f"job {job.status.kind}")
        status = job.status
        check(status.state == "done", f"the {status.kind} job ended {status.state}: {status.error or status.message}")
        return status.result

    def process(self, stage: str):
        """The process job the window submits, with this one stage; its result, checked not skipped."""
        result = self.wait(self.session.process_all((stage,)))
        outcome = next(r for r in result if r["stage"] == stage)
        check(not outcome["skipped"], f"{stage} was skipped: {outcome['skipped']}")
        return outcome["result"]

    def status(self) -> dict:
        return self.session.library.status()

    # -- stages -------------------------------------------------------------------------------------------
    def open(self) -> str:
        from ..pipeline.app import AppSession
        from .main_window import MainWindow

        folder = self.root / "photos"
        folder.mkdir()
        for photo in self.photos:  # each photo and its mirror image: the same faces twice, so clusters must form
            shutil.copy(photo, folder / photo.name)
            ImageOps.mirror(Image.open(photo).convert("RGB")).save(folder / f"mirrored_{photo.stem}.png")
        self.session = AppSession(self.root / "data", watch=False)
        self.window = MainWindow(self.session)
        self.window.resize(1200, 800)
        self.window.show()
        self.session.library.add_folder(folder)
        self.settle(0.2)
        return f"library in a temporary folder, {2 * len(self.photos)} photos to add"

    def formats(self) -> str:
        """The optional readers fail quietly when missing (the source app works without them): not in a bundle."""
        from .. import imaging

        missing = [name for name, ok in (("HEIF", imaging.HEIF_SUPPORTED), ("JPEG XL", imaging.JXL_SUPPORTED),
                                         ("RAW", imaging.RAW_SUPPORTED)) if not ok]
        try:
            import pyexiv2  # noqa: F401 - XMP write-back and RAW dates; loads the Exiv2 library it ships
        except (ImportError, OSError) as exc:
            missing.append(f"XMP ({exc})")
        check(not missing, "cannot read or write " + ", ".join(missing))
        return "HEIF, JPEG XL, RAW, XMP"

    def scan(self) -> str:
        counts = self.process("scan")
        photos = self.status()["photos"]
        check(photos == 2 * len(self.photos), f"{photos} of {2 * len(self.photos)} photos scanned: {counts}")
        return f"{photos} photos"

    def index(self) -> str:
        self.process("index")
        status = self.status()
        check(status["faces"] >= 2, f"{status['faces']} faces found (the group photo has 6, twice)")
        return f"{status['faces']} faces, engine {self.session.settings['face_engine']}"

    def cluster(self) -> str:
        self.process("cluster")
        clusters = self.session.people.clusters()
        pairs = [c for c in clusters if c["cluster_kind"] == "face" and c["size"] >= 2]
        check(pairs, "no face cluster holds a face and its mirrored twin")
        return f"{len(clusters)} clusters, {len(pairs)} of faces seen twice"

    def name(self) -> str:
        cluster = next(c for c in self.session.people.clusters() if c["cluster_kind"] == "face" and c["size"] >= 2)
        self.session.people.op("name_cluster", cluster["id"], NAME, kind="person")
        self.concept_id = self.session.db.scalar("SELECT id FROM concepts WHERE name = ?", (NAME,))
        check(self.concept_id is not None, f"naming cluster {cluster['id']} made no concept")
        return f"cluster {cluster['id']} ({cluster['size']} faces) is <{NAME}>"

    def detect(self) -> str:
        result = self.process("detect")
        check(not result.get("problems"), f"heads not trained: {result.get('problems')}")
        found = self.session.db.scalar("SELECT count(DISTINCT photo_id) FROM occurrences WHERE concept_id = ? "
                                       "AND present = 1", (self.concept_id,))
        check(found >= 2, f"the head of <{NAME}> marked {found} photos (her photo and its mirror expected)")
        return f"head trained, <{NAME}> marked in {found} photos"

    def ask(self) -> str:
        from ..pipeline import ask
        from ..pipeline.questions import ask_library

        result = ask_library(self.session.library, f"How many photos of <{NAME}>?")  # as the chat panel asks
        check(ask.shared_phraser(self.session.library.root) is not None,
              f"SmolLM2 did not load: {', '.join(ask._no_phraser)}")
        check(result["phrased_by"] != ask.TEMPLATE or result.get("phrasing_rejected"),
              "the answer was not put to SmolLM2")
        return f"{result['phrased_by']}: {result['answer']!r}"

    def search(self) -> str:
        window = self.window
        window.run_search(f"@{NAME}")
        self.pump(lambda: window.current_page() == "search" and window.search_model.rowCount() >= 2,
                  f"the window's search for @{NAME}", timeout=60)
        return f"@{NAME}: {window.search_model.rowCount()} photos in the window"

    def tiny_vlm(self) -> str:
        from ..pipeline.process import vlm_weights
        from ..pipeline.settings import save_settings, vlm_options
        from ..vlm.testing import save_tiny_model

        folder = save_tiny_model(self.session.settings["vlm_backend"], self.root / "tiny-vlm")
        self.session.settings.update(save_settings(self.session.db, {"vlm_model": str(folder)}))
        vlm_weights(vlm_options(self.session.settings))  # the loader's lookup, which imports torch and transformers
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        return f"random {self.session.settings['vlm_backend']} model, {size / 1e6:.1f} MB, in the temporary folder"

    def train(self) -> str:
        job = self.session.submit("train", {"concept": self.concept_id, "steps": TRAIN_STEPS})
        result = self.wait(job)
        check(Path(result["path"]).is_file(), f"no concept embedding written: {result}")
        return f"<{NAME}> trained {TRAIN_STEPS} steps, loss {result.get('loss') or 0:.3f}"

    def caption(self) -> str:
        counts = self.process("caption")
        rows = self.session.db.query("SELECT c.text, c.concepts FROM captions c JOIN concept_photos cp "
                                     "ON cp.photo_id = c.photo_id AND cp.concept_id = ?", (self.concept_id,))
        check(counts.get("captioned"), f"no photo captioned: {counts}")
        check(rows and all(NAME in (r["concepts"] or "") for r in rows),
              f"the photos of <{NAME}> have no caption made with her embedding")
        return f"{counts['captioned']} photos captioned, {len(rows)} with <{NAME}>"

    def show(self) -> str:
        window = self.window
        window.refresh_all()
        self.settle()
        photos = self.status()["photos"]
        check(window.library_model.total() == photos, "the library grid does not show the indexed photos")
        window.show_page("people")
        self.settle()
        check(window.isVisible(), "the main window is not shown")
        return f"library grid {window.library_model.total()} photos, search page {window.search_model.rowCount()}"

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window.shutdown()
        elif self.session is not None:
            self.session.close()
        from ..pipeline import captions

        captions._backends.clear()  # the tiny model goes with its folder
