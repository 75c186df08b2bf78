"""The bundle carries every data file the app loads at run time (caught here, without building it)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

import bundle  # noqa: E402

from myvlm_desktop.models import lookup  # noqa: E402
from myvlm_desktop.models.registry import MODELS  # noqa: E402


def _bundled() -> dict[str, str]:
    """source file -> where it lands inside the bundle, relative to the bundle's import root."""
    return {str(Path(src).resolve()): str(Path(dest) / Path(src).name) for src, dest in bundle.data_files()}


def _import_relative(path: Path) -> str:
    """A file inside site-packages (or the repo) as the frozen app sees it: relative to the import root."""
    candidates = []
    for root in [*map(Path, sys.path), ROOT]:
        try:
            candidates.append(str(path.resolve().relative_to(Path(root).resolve())))
        except (ValueError, OSError):
            continue
    assert candidates, f"{path} is outside every import root"
    return min(candidates, key=len)  # the deepest root: site-packages, not the repo that contains .venv


@pytest.mark.parametrize("model", [m for m in MODELS if m.source == "package"], ids=lambda m: m.name)
def test_every_package_shipped_model_file_is_bundled_where_lookup_will_look(model):
    located = lookup.locate(model)
    folder = located if located.is_dir() else located.parent
    bundled = _bundled()
    for name in model.files:
        source = str((folder / name).resolve())
        assert source in bundled, f"{model.name}: {name} is not in the bundle"
        assert bundled[source] == _import_relative(folder / name), f"{model.name}: {name} lands elsewhere"


def test_every_resource_file_is_bundled():
    files = [p for p in (ROOT / "resources").rglob("*") if p.is_file()]
    assert files, "resources/ is empty"
    bundled = _bundled()
    for path in files:
        assert bundled.get(str(path.resolve())) == str(path.relative_to(ROOT)), path


def test_self_test_photos_exist_and_are_bundled():
    for source, dest in bundle.sample_files():
        assert Path(source).is_file(), source
        assert dest == bundle.SAMPLE_DEST


def test_large_downloadable_models_are_not_bundled():
    sources = " ".join(src for src, _ in bundle.data_files())
    for model in MODELS:
        if model.source != "package":
            for name in model.files:
                assert name not in sources or name in ("config.json",), f"{model.name} would be bundled"


def test_package_model_modules_are_hidden_imports():
    """The lookup finds them with find_spec without importing them: the frozen app must still carry them."""
    modules = bundle.hidden_imports()
    for model in MODELS:
        if model.source == "package":
            assert model.module in modules


def test_test_programs_are_dropped_but_app_files_kept():
    assert not bundle.keep(("torch/test/test_api", "", "BINARY"))
    assert not bundle.keep(("torch/bin/protoc", "", "BINARY"))
    assert bundle.keep(("torch/bin/torch_shm_manager", "", "BINARY"))  # `import torch` needs it
    assert bundle.keep(("torch/lib/libtorch_cpu.so", "", "BINARY"))
    assert all(bundle.keep((str(Path(dest) / Path(src).name), src, "DATA")) for src, dest in bundle.data_files())


def test_spec_uses_the_bundle_list_and_the_frozen_entry_point():
    spec = (ROOT / "packaging" / "myvlm-desktop.spec").read_text()
    assert "bundle.data_files()" in spec and "entry.py" in spec
    assert "bundle.hidden_imports()" in spec and "bundle.keep" in spec
    entry = (ROOT / "packaging" / "entry.py").read_text()
    assert "freeze_support()" in entry and "myvlm_desktop.gui.app import main" in entry


def test_the_bundle_runs_the_command_line_when_started_as_myvlm():
    sys.path.insert(0, str(ROOT / "packaging"))
    import entry

    assert entry.wants_cli("myvlm") and entry.wants_cli("/opt/myvlm-desktop/myvlm") and entry.wants_cli("myvlm.exe")
    assert not entry.wants_cli("myvlm-desktop") and not entry.wants_cli("/usr/bin/myvlm-desktop")
    assert not entry.wants_cli("C:/Program Files/MyVLM Desktop/myvlm-desktop.exe")
    spec = (ROOT / "packaging" / "myvlm-desktop.spec").read_text()
    assert 'symlink_to("myvlm-desktop")' in spec and 'name="myvlm"' in spec
