"""The clustering job: faces into face clusters, then photos into image clusters (pet / object candidates).

It runs after indexing (the `process` chain's "cluster" stage) and from `myvlm cluster [--full]`. An
incremental run only places what is new or still waiting; a full one rebuilds every cluster nobody named,
hid or edited (people/update.py says exactly what survives).
"""

from __future__ import annotations

from ..library.store import Library
from ..people.update import cluster_faces, cluster_images
from .jobs import JobControl


def cluster_library(library: Library, control: JobControl | None = None, full: bool = False) -> dict:
    """Cluster faces and photos; progress, pause and cancel go through `control` between the steps."""
    def part(offset: int):
        if control is None:
            return None
        return lambda done, total, message="": control.progress(offset + done, 2 * total, message)

    faces = cluster_faces(library.db, full=full, progress=part(0))
    images = cluster_images(library.db, full=full, progress=part(4))
    return {"faces": faces, "images": images}


def cluster_job(library: Library):
    """The job function the app's job queue runs for the "cluster" stage."""
    return lambda control, full=False: cluster_library(library, control, full=full)
