"""`make package`: build the one-folder bundle, run its --self-test, write a tar.gz, report size and time.

    python packaging/build.py [--skip-build] [--out benchmarks/results/package.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "myvlm-desktop"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
                    "--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build" / "pyinstaller"),
                    str(ROOT / "packaging" / "myvlm-desktop.spec")], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def self_test() -> tuple[int, float, str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    result = subprocess.run([str(BUNDLE / "myvlm-desktop"), "--self-test"], capture_output=True, text=True,
                            env=env, timeout=600)
    return result.returncode, time.perf_counter() - t0, (result.stdout + result.stderr)[-3000:]


def archive() -> Path:
    target = ROOT / "dist" / "myvlm-desktop-linux-x86_64.tar.gz"
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        tar.add(BUNDLE, arcname="myvlm-desktop")
    return target


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-build", action="store_true", help="reuse dist/myvlm-desktop")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "package.json"))
    args = parser.parse_args()
    build_s = 0.0 if args.skip_build else build()
    code, test_s, output = self_test()
    print(output)
    report = {"build_seconds": round(build_s, 1), "bundle_bytes": folder_size(BUNDLE),
              "self_test_exit": code, "self_test_seconds": round(test_s, 1)}
    if code == 0:
        tar = archive()
        report["archive"], report["archive_bytes"] = str(tar.relative_to(ROOT)), tar.stat().st_size
    report["bundle_gb"] = round(report["bundle_bytes"] / 1e9, 3)
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
