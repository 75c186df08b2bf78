"""Tiny random-initialised models of the three real VLM classes, saved and loaded through the real loader."""

from __future__ import annotations

import pytest
import torch

from tests.vlm.helpers import VARIANTS, photo


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; more only add overhead (and contention on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    from myvlm_desktop.vlm.testing import save_tiny_model

    root = tmp_path_factory.mktemp("tiny-vlms")
    built: dict[str, object] = {}

    def build(variant: str):
        if variant not in built:
            backend, lm = VARIANTS[variant]
            built[variant] = save_tiny_model(backend, root / variant, variant=lm)
        return built[variant]

    return build


@pytest.fixture(scope="session")
def tiny_backend(tiny_folder):
    """A backend loaded from its saved folder by the real loader (fp32, CPU), once per session."""
    from myvlm_desktop.vlm.generate import load_backend

    loaded: dict[str, object] = {}

    def load(variant: str):
        if variant not in loaded:
            loaded[variant] = load_backend(VARIANTS[variant][0], str(tiny_folder(variant)), device="cpu",
                                           dtype=torch.float32)
        return loaded[variant]

    return load


@pytest.fixture(scope="session")
def concept_photos():
    """Two photos of the concept (Eileen Collins, skimage's astronaut) and a held-back third."""
    astronaut = photo("astronaut")
    return [astronaut, astronaut.crop((50, 0, 512, 460))], astronaut.crop((0, 30, 480, 512))


@pytest.fixture(scope="session")
def other_photos():
    return [photo("coffee"), photo("chelsea"), photo("rocket")]
