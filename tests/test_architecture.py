"""The architecture rules that keep the app fast to start and the core free of Qt."""

import subprocess
import sys


def test_import_contracts_hold():
    result = subprocess.run([sys.executable, "-m", "importlinter.cli"], capture_output=True, text=True, check=False)
    if result.returncode != 0 and "No module named" in result.stderr:
        result = subprocess.run(["lint-imports"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_starts_without_loading_ml_or_qt():
    """`myvlm status` must answer at once: torch, transformers, dlib, onnxruntime and Qt load only when used."""
    code = ("import sys; from myvlm_desktop.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'dlib', 'onnxruntime', 'PySide6', 'faiss', 'cv2') "
            "if m in sys.modules]; print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"imported at CLI start-up: {result.stdout.strip()}"
