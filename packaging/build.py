"""`make package`: build the one-folder bundle, run its --self-test and the frozen command-line test, write the
tar.gz a Linux user installs (bundle + install.sh + desktop entry + icon), install it into a scratch folder to
check the installer, and report sizes and times. Exits non-zero when any step fails.

    python packaging/build.py [--skip-build] [--out benchmarks/results/package.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "myvlm-desktop"
ARCHIVE = ROOT / "dist" / "myvlm-desktop-linux-x86_64.tar.gz"
EXE = ".exe" if os.name == "nt" else ""
# beside the executables in the tar.gz: what install.sh installs
EXTRAS = (ROOT / "packaging" / "install.sh", ROOT / "resources" / "myvlm-desktop.desktop",
          ROOT / "resources" / "myvlm-desktop.svg")
MAX_BYTES = 1.5e9
STAGE_LINE = re.compile(r"^self-test: (\w+)\s+([\d.]+) s\b", re.MULTILINE)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def frozen_env() -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # the frozen app must find everything inside the bundle
    return env


def build() -> float:
    t0 = time.perf_counter()
    # PYTHONPATH first: this checkout's code is bundled even when an editable install points elsewhere
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
                    "--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build" / "pyinstaller"),
                    str(ROOT / "packaging" / "myvlm-desktop.spec")], check=True, cwd=ROOT, env=env)
    return time.perf_counter() - t0


def self_test() -> dict:
    t0 = time.perf_counter()
    result = subprocess.run([str(BUNDLE / f"myvlm-desktop{EXE}"), "--self-test"], check=False, capture_output=True,
                            text=True, env=frozen_env(), timeout=1800)
    print(result.stdout, result.stderr[-4000:] if result.returncode else "", sep="\n")
    stages = {name: float(seconds) for name, seconds in STAGE_LINE.findall(result.stdout)}
    return {"exit": result.returncode, "seconds": round(time.perf_counter() - t0, 1), "stages": stages}


def frozen_cli_test() -> dict:
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "packaging" / "test_frozen.py")], check=False, cwd=ROOT,
                            env={**os.environ, "MYVLM_BUNDLE": str(BUNDLE)})
    return {"exit": result.returncode, "seconds": round(time.perf_counter() - t0, 1)}


def archive() -> Path:
    with tarfile.open(ARCHIVE, "w:gz", compresslevel=6) as tar:
        tar.add(BUNDLE, arcname="myvlm-desktop")
        for extra in EXTRAS:
            tar.add(extra, arcname=f"myvlm-desktop/{extra.name}")
    return ARCHIVE


def install_check(tar: Path) -> dict:
    """Unpack the archive and run its install.sh into a scratch prefix; the installed `myvlm` must start."""
    with tempfile.TemporaryDirectory(prefix="myvlm-install-") as tmp:
        with tarfile.open(tar) as archive_file:
            archive_file.extractall(tmp, filter="tar")
        prefix = Path(tmp) / "prefix"
        env = {**frozen_env(), "PREFIX": str(prefix)}
        install = subprocess.run(["sh", str(Path(tmp) / "myvlm-desktop" / "install.sh")], check=False,
                                 env=env, capture_output=True, text=True, timeout=600)
        if install.returncode:
            return {"exit": install.returncode, "error": install.stderr.strip()}
        desktop = (prefix / "share" / "applications" / "myvlm-desktop.desktop").read_text()
        run = subprocess.run([str(prefix / "bin" / "myvlm"), "--data-dir", str(Path(tmp) / "data"), "status",
                              "--json"], check=False, env=env, capture_output=True, text=True, timeout=600)
        ok = run.returncode == 0 and str(prefix / "opt" / "myvlm-desktop" / "myvlm-desktop") in desktop
        return {"exit": 0 if ok else 1, "error": "" if ok else (run.stderr.strip()[-500:] or desktop)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-build", action="store_true", help="reuse dist/myvlm-desktop")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "package.json"))
    args = parser.parse_args()
    report: dict = {"build_seconds": 0.0 if args.skip_build else round(build(), 1)}
    report["bundle_bytes"] = folder_size(BUNDLE)
    report["self_test"] = self_test()
    failed = [] if report["self_test"]["exit"] == 0 else ["self-test"]
    report["frozen_cli_test"] = frozen_cli_test()
    if report["frozen_cli_test"]["exit"]:
        failed.append("frozen command-line test")
    if report["bundle_bytes"] > MAX_BYTES:
        failed.append(f"bundle is {report['bundle_bytes'] / 1e9:.2f} GB, over {MAX_BYTES / 1e9:.1f} GB")
    if not failed and sys.platform.startswith("linux"):  # Windows and macOS: the installer recipes of the README
        tar = archive()
        report["archive"], report["archive_bytes"] = str(tar.relative_to(ROOT)), tar.stat().st_size
        report["install_check"] = install_check(tar)
        if report["install_check"]["exit"]:
            failed.append(f"install.sh: {report['install_check']['error']}")
    report["bundle_gb"] = round(report["bundle_bytes"] / 1e9, 3)
    report["failed"] = failed
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for step in failed:
        print(f"make package FAILED: {step}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
