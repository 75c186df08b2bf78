"""Render the main views to PNG files: `python -m myvlm_desktop.gui.screenshots OUTDIR` (`make screenshots`).

The sample library is made of photos that pip packages ship (insightface's group photo and its mirror and
crops, scikit-image's astronaut, cat, coffee...), processed by the real pipeline; two face clusters are
named and a pet concept is made from a photo, as a user would. Nothing shown is made up: where a model is
not installed (no VLM here), the views show what the app shows a user in that case.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt

SIZE = (1320, 820)


def _package_file(package: str, *parts: str) -> Path:
    return Path(importlib.util.find_spec(package).origin).parent.joinpath(*parts)


def sample_folder(folder: Path) -> Path:
    """Copy package-shipped photos into `folder` (plus a mirror and crops of the group photo)."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    group = _package_file("insightface", "data", "images", "t1.jpg")
    image = Image.open(group).convert("RGB")
    image.save(folder / "picnic.jpg", quality=92)
    ImageOps.mirror(image).save(folder / "picnic_again.jpg", quality=92)
    w, h = image.size
    image.crop((0, 0, int(w * 0.55), h)).save(folder / "picnic_left.jpg", quality=92)
    image.crop((int(w * 0.45), 0, w, h)).save(folder / "picnic_right.jpg", quality=92)
    for name, target in (("Tom_Hanks_54745.png", "portrait.png"),):
        source = _package_file("insightface", "data", "images", name)
        if source.exists():
            Image.open(source).convert("RGB").save(folder / target)
    for name, target in (("astronaut.png", "astronaut.png"), ("chelsea.png", "chelsea.png"),
                         ("coffee.png", "coffee.png"), ("rocket.jpg", "launch.jpg"),
                         ("motorcycle_left.png", "motorbike.png"), ("hubble_deep_field.jpg", "stars.jpg"),
                         ("camera.png", "photographer.png"), ("immunohistochemistry.png", "ihc.png")):
        source = _package_file("skimage", "data", name)
        if source.exists():
            Image.open(source).convert("RGB").save(folder / target)
    return folder


def build_library(session, folder: Path) -> dict:
    """Process the sample folder with the real pipeline and name what a user would name."""
    session.library.add_folder(folder)
    job = session.process_all()
    job.wait()
    facts = {"process": job.status.state, "result": job.status.result}
    clusters = [c for c in session.people.clusters() if c["cluster_kind"] == "face"]
    names = iter(["Alice", "Mia"])
    for cluster in clusters[:2]:
        session.people.op("name_cluster", cluster["id"], next(names), kind="person")
    cat = next((p for p in session.views.photo_page(0, 100) if os.path.basename(p[2]) == "chelsea.png"), None)
    if cat is not None:
        session.people.op("create_concept_from_photos", "Chelsea", "pet", [cat[0]])
    facts["detect"] = session.submit("detect").wait().state
    return facts


def settle(app, window, seconds: float = 1.5) -> None:
    """Let the views load what they load in the background (thumbnails, faces, pages)."""
    from .workers import wait_for_tasks

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        wait_for_tasks(50)
        window.thumbs.wait(50)
        window.faces.wait(50)
        time.sleep(0.02)
    app.processEvents()


def save(widget, outdir: Path, name: str) -> Path:
    path = outdir / f"{name}.png"
    widget.grab().save(str(path), "PNG", 0)  # quality 0: the strongest compression
    print(f"wrote {path}")
    return path


def render(outdir: Path, work: Path) -> list[Path]:
    from ..pipeline.app import AppSession
    from .app import make_app
    from .dialogs import SettingsDialog
    from .main_window import MainWindow

    app = make_app()
    session = AppSession(work / "data", watch=False)
    facts = build_library(session, sample_folder(work / "Photos"))
    print(f"sample library: {session.library.status()} {facts.get('process')}")
    window = MainWindow(session)
    window.resize(*SIZE)
    window.show()
    settle(app, window)
    shots = [save(window, outdir, "library")]

    window.show_page("people")
    settle(app, window)
    shots.append(save(window, outdir, "people"))

    named = [c for c in session.people.clusters() if c["concept"]]
    if named:
        photo_id = max(((row[0], len(session.views.photo_detail(row[0])["faces"])) for row in session.views.photo_page(0, 50)),
                       key=lambda pair: pair[1])[0]
        window.open_photo(photo_id, window.library_model)
        settle(app, window, 2.5)
        shots.append(save(window, outdir, "viewer"))

    window.show_page("concepts")
    settle(app, window)
    shots.append(save(window, outdir, "concepts"))

    query = f"@{named[0]['concept']}" if named else "picnic"
    window.search_bar.setText(query)
    window.run_search(query)
    settle(app, window)
    shots.append(save(window, outdir, "search"))

    window.chat.set_scope("library")
    if named:
        window.chat.input.setText(f"How many photos of <{named[0]['concept']}> do I have?")
        window.chat.send()
        deadline = time.monotonic() + 300
        while window.chat.busy and time.monotonic() < deadline:
            settle(app, window, 0.2)
    window.show_page("library")
    settle(app, window)
    shots.append(save(window, outdir, "chat"))

    more = sample_folder(work / "More photos")
    for i, photo in enumerate(sorted(more.iterdir())):  # other copies, so the scan has real work to do
        photo.rename(more / f"copy_{i:02d}{photo.suffix}")
    session.library.add_folder(more)
    job = session.process_all()
    window.jobs_dock.show()
    window.resizeDocks([window.jobs_dock], [170], Qt.Orientation.Vertical)
    deadline = time.monotonic() + 300
    while job.status.fraction < 0.3 and not job.done_event.is_set() and time.monotonic() < deadline:
        settle(app, window, 0.1)  # pause it part-way through finding faces, as a user might
    window.jobs_panel.rows[job.status.id].toggle_pause()  # the row's pause button
    settle(app, window)
    shots.append(save(window, outdir, "jobs"))
    window.jobs_panel.rows[job.status.id].toggle_pause()
    job.wait()

    dialog = SettingsDialog(session.settings, session.library.folders(), str(session.library.root), window)
    dialog.resize(640, 640)
    dialog.show()
    settle(app, window, 0.5)
    shots.append(save(dialog, outdir, "settings"))
    dialog.close()

    models = window.open_models()
    models.resize(900, 520)
    deadline = time.monotonic() + 30
    while models.table.rowCount() == 0 and time.monotonic() < deadline:
        settle(app, window, 0.2)
    models.table.setCurrentCell(next((r for r in range(models.table.rowCount())
                                      if models.table.item(r, 3).text() == "Not installed"), 0), 0)
    settle(app, window, 0.3)
    shots.append(save(models, outdir, "models"))
    models.close()
    shots += model_dialog_shots(app, window, outdir)
    window.close()
    return shots


def model_dialog_shots(app, window, outdir: Path) -> list[Path]:
    """The missing-model dialog as Train shows it: the facts, then Download pressed (the download's first
    moment, and, on a machine that cannot reach the Hub, what it says then)."""
    from .. import config
    from ..gui.model_dialog import MissingModelDialog
    from ..models import registry

    dialog = MissingModelDialog(registry.spec("HuggingFaceTB/SmolVLM-256M-Instruct"),
                                "Training teaches the vision-language model to name Alice.",
                                config.models_dir(window.session.library.root), window)
    dialog.show()
    dialog.resize(640, dialog.sizeHint().height() + 40)
    settle(app, window, 0.3)
    shots = [save(dialog, outdir, "model_missing")]
    dialog.download()
    app.processEvents()
    shots.append(save(dialog, outdir, "model_downloading"))
    deadline = time.monotonic() + 60
    while dialog.downloading and time.monotonic() < deadline:
        settle(app, window, 0.2)
    if dialog.isVisible():  # no connection here: the sentence that offers Choose folder
        shots.append(save(dialog, outdir, "model_offline"))
    dialog.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m myvlm_desktop.gui.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--keep", help="build the sample library here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="myvlm-screens-"))
    try:
        render(outdir, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
