"""The local Hub: tiny random checkpoints of the real classes, served on 127.0.0.1 for the whole session."""

from __future__ import annotations

import pytest

from tests.models.hub_server import HubServer, build_tiny_repos, hub_environment


@pytest.fixture(scope="session")
def hub_repos(tmp_path_factory):
    return build_tiny_repos(tmp_path_factory.mktemp("hub-repos"))


@pytest.fixture
def hub(hub_repos, tmp_path, monkeypatch):
    """A fresh server (its log and faults per test), with this process's huggingface_hub pointed at it."""
    from huggingface_hub import constants

    with HubServer(hub_repos, lifetime=300) as server:
        env = hub_environment(server, tmp_path / "hf-cache")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
        monkeypatch.setenv("MYVLM_DATA_DIR", str(tmp_path / "app-data"))  # the models folder, for partial files
        server.env = env
        yield server
    assert not server.running
