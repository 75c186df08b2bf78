"""Library-question speed: `myvlm ask --library` from the CLI, cold and warm.

cold: a fresh process answering one question, after the de-quantised SmolLM2 cache (bf16 safetensors and the
worked examples' key/value cache) exists (the first run ever builds it; its time is reported apart).
import_floor: a fresh process that only imports torch and transformers' Llama model, which any answer phrased
through transformers pays: the part of the cold time this cache cannot remove. warm: the same process answering again (the app keeps SmolLM2 loaded
while the chat is open). first_answer: how soon the template answer from SQL facts reaches `on_token`.
numpy: the same phrasing by vlm/smollm_numpy.py (no torch) from a float32 copy of the cache and the worked
examples' key/value cache: a fresh process answering the cold CLI's question and facts (`numpy_cold`, interleaved
with the cold CLI runs), beside `template_cli` (the CLI answering with `--no-llm`: what the CLI costs without any
model) and `numpy_cli` (the CLI with the numpy runtime put in place of its shared phraser, as the app would be if it
were switched on), and warm in one process. BLAS runs on one thread (OPENBLAS_NUM_THREADS=1), as torch does for phrasing.

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


def cli_seconds(data: Path, *extra: str) -> tuple[float, dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), "ask", "--library",
                          QUESTION, "--json", *extra], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout)


NUMPY_ANSWER = """
import json, sys
import numpy as np
from myvlm_desktop.vlm import phrase, smollm_numpy
folder, question, facts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
lm = smollm_numpy.SmolLM(folder)
stored, cache = np.load(folder + "/examples.npz"), smollm_numpy.KVCache(lm.layers)
cache.keys, cache.values = list(stored["keys"]), list(stored["values"])
messages = [*phrase._worked_examples(), {"role": "user", "content": phrase._prompt(question, facts)}]
ids = lm.chat_ids(messages, add_generation_prompt=True)
assert ids[:len(cache)] == stored["ids"].tolist()
new = lm.generate(ids, 40, stop=lambda new: "\\n" in lm.decode(new).lstrip(), cache=cache)
print(json.dumps({"answer": phrase.first_line(lm.decode(new)), "torch": "torch" in sys.modules}))
"""


NUMPY_CLI = """
import atexit, json, sys
import numpy as np
from myvlm_desktop.vlm import phrase, smollm_numpy

class NumpyPhraser:  # what phrase.shared would give if the runtime were switched on (loaded on first use)
    name = phrase.MODEL_NAME

    def phrase(self, question, facts):
        folder = sys.argv[1]
        lm = smollm_numpy.SmolLM(folder)
        stored, cache = np.load(folder + "/examples.npz"), smollm_numpy.KVCache(lm.layers)
        cache.keys, cache.values = list(stored["keys"]), list(stored["values"])
        messages = [*phrase._worked_examples(), {"role": "user", "content": phrase._prompt(question, facts)}]
        new = lm.generate(lm.chat_ids(messages, add_generation_prompt=True), 40,
                          stop=lambda new: "\\n" in lm.decode(new).lstrip(), cache=cache)
        return phrase.first_line(lm.decode(new))

phrase._shared.append(NumpyPhraser())
atexit.register(lambda: print("torch imported:", "torch" in sys.modules, file=sys.stderr))
from myvlm_desktop.cli import main
sys.exit(main(sys.argv[2:]))
"""


def numpy_cli_seconds(folder: Path, data: Path) -> tuple[float, dict, bool]:
    """The CLI itself (`ask --library`) with the numpy runtime put in place of the shared phraser."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", NUMPY_CLI, str(folder), "--data-dir", str(data), "ask", "--library",
                          QUESTION, "--json"], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout), "torch imported: True" in out.stderr


def numpy_folder(data: Path) -> Path:
    """The float32 copy and the examples' key/value cache next to the product's cache (made here, with torch)."""
    import shutil

    import numpy as np

    from myvlm_desktop import config
    from myvlm_desktop.vlm import phrase, smollm_numpy

    cache = config.models_dir(data) / "smollm2-135m-instruct"
    folder = cache.parent / "smollm2-numpy"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (cache / name).is_file():
            shutil.copy(cache / name, folder / name)
    smollm_numpy.float32_copy(folder, cache / phrase.WEIGHTS)
    lm = smollm_numpy.SmolLM(folder)
    ids = lm.chat_ids(phrase._worked_examples())
    kv = smollm_numpy.KVCache(lm.layers)
    lm.forward(ids, kv, all_logits=None)
    np.savez(folder / "examples.npz", ids=np.array(ids), keys=np.stack(kv.keys), values=np.stack(kv.values))
    return folder


def numpy_seconds(folder: Path, question: str, facts: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", NUMPY_ANSWER, str(folder), question, json.dumps(facts)],
                         capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout)


def import_floor_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch; from transformers import LlamaForCausalLM"], check=True)
    return time.perf_counter() - t0


def in_process(data: Path) -> dict:
    from myvlm_desktop.pipeline.ask import ask_library, shared_phraser

    with Library(data) as lib:
        seen: list[float] = []
        t0 = time.perf_counter()
        first = ask_library(lib, QUESTION, on_token=lambda text: seen.append(time.perf_counter() - t0))
        load_s = time.perf_counter() - t0
        phraser = shared_phraser(lib.root)
        warm: dict[str, list[float]] = {"examples_cached": [], "whole_prompt": []}
        answers = set()
        for _ in range(2):  # interleaved: the worked examples' key/value cache against reading the whole prompt
            for name in warm:
                if name == "whole_prompt":
                    phraser._cached_prefix = lambda inputs: {}
                t0 = time.perf_counter()
                again = ask_library(lib, QUESTION, on_token=lambda text, t0=t0: seen.append(time.perf_counter() - t0))
                warm[name].append(time.perf_counter() - t0)
                answers.add(again["answer"])
                phraser.__dict__.pop("_cached_prefix", None)
    return {"first_question_s": round(load_s, 2), "warm_s": round(min(warm["examples_cached"]), 2),
            "warm_whole_prompt_s": round(min(warm["whole_prompt"]), 2),
            "warm_runs": {k: [round(x, 2) for x in v] for k, v in warm.items()},
            "warm_first_text_s": round(seen[-1], 3), "phrased_by": again["phrased_by"],
            "same_answer": answers == {first["answer"]}, "answer": again["answer"]}


def numpy_warm(folder: Path, question: str, facts: list[str]) -> list[float]:
    from threadpoolctl import threadpool_limits

    from myvlm_desktop.vlm import phrase, smollm_numpy

    lm = smollm_numpy.SmolLM(folder)
    examples = smollm_numpy.KVCache(lm.layers)
    lm.forward(lm.chat_ids(phrase._worked_examples()), examples, all_logits=None)
    times = []
    with threadpool_limits(1):
        for _ in range(2):
            t0 = time.perf_counter()
            ids = lm.chat_ids([*phrase._worked_examples(), {"role": "user", "content": phrase._prompt(question, facts)}],
                              add_generation_prompt=True)
            lm.generate(ids, 40, stop=lambda new: "\n" in lm.decode(new).lstrip(), cache=examples.copy())
            times.append(round(time.perf_counter() - t0, 2))
    return times


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
        from myvlm_desktop.pipeline.ask import plain

        _, first = cli_seconds(data)
        question, facts = plain(QUESTION), [plain(f["text"]) for f in first["facts"] if f.get("role") == "answer"]
        folder = numpy_folder(data)
        cold, floor, numpy_cold, template, numpy_cli = [], [], [], [], []
        for _ in range(args.runs):  # interleaved, so the machine's load weighs on all alike
            cold.append(cli_seconds(data))
            floor.append(import_floor_seconds())
            numpy_cold.append(numpy_seconds(folder, question, facts))
            template.append(cli_seconds(data, "--no-llm")[0])
            numpy_cli.append(numpy_cli_seconds(folder, data))
        result = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "cache_build_run_s": round(build_s, 2),
                  "cold_s": [round(s, 2) for s, _ in cold], "cold_median_s": round(statistics.median(s for s, _ in cold), 2),
                  "import_floor_s": [round(s, 2) for s in floor], "import_floor_median_s": round(statistics.median(floor), 2),
                  "cold_answer": cold[0][1]["answer"], "cold_phrased_by": cold[0][1]["phrased_by"],
                  "phrased_facts": facts, "numpy_cold_s": [round(s, 2) for s, _ in numpy_cold],
                  "numpy_cold_median_s": round(statistics.median(s for s, _ in numpy_cold), 2),
                  "numpy_answer": numpy_cold[0][1]["answer"], "numpy_imported_torch": any(r["torch"] for _, r in numpy_cold),
                  "template_cli_s": [round(s, 2) for s in template],
                  "numpy_cli_s": [round(s, 2) for s, _, _ in numpy_cli],
                  "numpy_cli_median_s": round(statistics.median(s for s, _, _ in numpy_cli), 2),
                  "numpy_cli_answer": numpy_cli[0][1]["answer"], "numpy_cli_phrased_by": numpy_cli[0][1]["phrased_by"],
                  "numpy_cli_imported_torch": any(t for _, _, t in numpy_cli),
                  "template_cli_median_s": round(statistics.median(template), 2),
                  "numpy_warm_s": numpy_warm(folder, question, facts),
                  **in_process(data), "load_after": os.getloadavg()}
    print("| what | now | goal |\n|---|---|---|")
    print(f"| a library question, first answer from the CLI (`myvlm ask --library`) | cold {result['cold_median_s']} s, "
          f"of which importing torch + transformers {result['import_floor_median_s']} s "
          f"(first run ever, building the cache: {result['cache_build_run_s']} s); warm in the app "
          f"{result['warm_s']} s (whole prompt: {result['warm_whole_prompt_s']} s), template shown after {result['warm_first_text_s']} s (load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}) | <= 3 s cold, <= 1 s warm |")
    print(f"| the same phrasing by the numpy runtime (no torch) | cold process {result['numpy_cold_median_s']} s "
          f"(CLI with the template alone: {result['template_cli_median_s']} s; the CLI phrasing with it: {result['numpy_cli_median_s']} s, torch imported: {result['numpy_cli_imported_torch']}), warm {min(result['numpy_warm_s'])} s; "
          f"answer {result['numpy_answer']!r} vs {result['cold_answer']!r} | <= 3 s cold, <= 1 s warm |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
