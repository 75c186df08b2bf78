"""Library-question speed: `myvlm ask --library` from the CLI, cold and warm.

cold: a fresh process answering one question (the product's path: SmolLM2 phrased by the numpy runtime,
vlm/smollm_numpy.py, from the float32 cache), after the cache exists (the first run ever builds it from the GGUF
with transformers; its time is reported apart). cold_blas1: the same with OPENBLAS_NUM_THREADS=1. template_cli:
the CLI answering with `--no-llm` (what the CLI costs without any model). imports_torch: whether the cold CLI
imported torch or transformers (`-X importtime`, one extra run). warm: the same process answering again (the app
keeps SmolLM2 loaded while the chat is open), with the worked examples' key/value cache and reading the whole
prompt. first_answer: how soon the template answer from SQL facts reaches `on_token`.

    python benchmarks/bench_ask.py [--runs 3] [--out benchmarks/results/ask.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from myvlm_desktop.library.db import now
from myvlm_desktop.library.store import Library

QUESTION = "When did I last see <Rex>?"


def fill(conn) -> None:
    conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (1, 'Rex', 'pet', '<Rex>', 0)")
    for pid in range(1, 41):
        date = f"20{10 + pid % 12:02d}-{1 + pid % 12:02d}-{1 + pid % 27:02d}T10:00:00"
        conn.execute("INSERT INTO photos(id, path, hash, date, status, added_at, updated_at) VALUES (?,?,?,?, 'ok', ?, ?)",
                     (pid, f"/photos/IMG_{pid:04d}.jpg", f"{pid:032x}", date, now(), now()))
        if pid % 3 == 0:
            conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) VALUES (?, 1, 'head', 0)",
                         (pid,))


def cli_seconds(data: Path, *extra: str, blas1: bool = False) -> tuple[float, dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if blas1:
        env["OPENBLAS_NUM_THREADS"] = "1"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "ask", "--library",
                          QUESTION, "--json", *extra], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout)


def cli_imports(data: Path) -> list[str]:
    """The heavy ML packages the cold CLI imported (`-X importtime`)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "myvlm_desktop.cli", "--data-dir", str(data), "ask",
                          "--library", QUESTION, "--json"], capture_output=True, text=True, check=True)
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines()
             if line.startswith("import time:")}
    return sorted(names & {"torch", "transformers", "numpy", "tokenizers", "jinja2"})


def in_process(data: Path) -> dict:
    from myvlm_desktop.pipeline.ask import ask_library, shared_phraser

    with Library(data) as lib:
        seen: list[float] = []
        t0 = time.perf_counter()
        first = ask_library(lib, QUESTION, on_token=lambda text: seen.append(time.perf_counter() - t0))
        load_s = time.perf_counter() - t0
        phraser = shared_phraser(lib.root)
        prefix = phraser._prefix
        warm: dict[str, list[float]] = {"examples_cached": [], "whole_prompt": []}
        answers = set()
        for _ in range(2):  # interleaved: the worked examples' key/value cache against reading the whole prompt
            for name in warm:
                # a prefix no prompt starts with: the whole prompt is read
                phraser._prefix = prefix if name == "examples_cached" else ([*prefix[0], -1], prefix[1])
                t0 = time.perf_counter()
                again = ask_library(lib, QUESTION, on_token=lambda text, t0=t0: seen.append(time.perf_counter() - t0))
                warm[name].append(time.perf_counter() - t0)
                answers.add(again["answer"])
        phraser._prefix = prefix
    return {"first_question_s": round(load_s, 2), "warm_s": round(min(warm["examples_cached"]), 2),
            "warm_whole_prompt_s": round(min(warm["whole_prompt"]), 2),
            "warm_runs": {k: [round(x, 2) for x in v] for k, v in warm.items()},
            "warm_first_text_s": round(seen[-1], 3), "phrased_by": again["phrased_by"],
            "same_answer": answers == {first["answer"]}, "answer": again["answer"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/ask.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with Library(data) as lib:
            lib.db.write(fill)
        build_s, _ = cli_seconds(data)  # de-quantises the GGUF and writes the cache
        cold, blas1, template = [], [], []
        for _ in range(args.runs):  # interleaved, so the machine's load weighs on all alike
            cold.append(cli_seconds(data))
            blas1.append(cli_seconds(data, blas1=True)[0])
            template.append(cli_seconds(data, "--no-llm")[0])
        result = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "cache_build_run_s": round(build_s, 2),
                  "cold_s": [round(s, 2) for s, _ in cold], "cold_median_s": round(statistics.median(s for s, _ in cold), 2),
                  "cold_blas1_s": [round(s, 2) for s in blas1], "cold_blas1_median_s": round(statistics.median(blas1), 2),
                  "template_cli_s": [round(s, 2) for s in template],
                  "template_cli_median_s": round(statistics.median(template), 2),
                  "cold_answer": cold[0][1]["answer"], "cold_phrased_by": cold[0][1]["phrased_by"],
                  "cold_imports": cli_imports(data), **in_process(data), "load_after": os.getloadavg()}
    print("| what | now | goal |\n|---|---|---|")
    print(f"| a library question, first answer from the CLI (`myvlm ask --library`) | cold {result['cold_median_s']} s "
          f"(OPENBLAS_NUM_THREADS=1: {result['cold_blas1_median_s']} s; `--no-llm`: {result['template_cli_median_s']} s; "
          f"imported: {', '.join(result['cold_imports'])}; first run ever, building the cache: {result['cache_build_run_s']} s); "
          f"warm in the app {result['warm_s']} s (whole prompt: {result['warm_whole_prompt_s']} s), template shown after "
          f"{result['warm_first_text_s']} s; answer {result['cold_answer']!r} by {result['cold_phrased_by']} "
          f"(load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}) | <= 3 s cold, <= 1 s warm |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
