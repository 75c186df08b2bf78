"""Library answers in the app: the worked examples read ahead (the chat's preload) and generation stopped at the
end of the first line, each against the old way, interleaved question by question in one process.

    python benchmarks/bench_answer_stop.py [--cache DIR] [--rounds 2] [--out benchmarks/results/answer_stop.json]

`--cache`: a folder holding (or to hold) the de-quantised SmolLM2 (building it the first time takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from myvlm_desktop.vlm import phrase

QUESTIONS = [("When did I last see Rex?", ["Rex was last seen on 2019-10-22, in IMG_0021.jpg."]),
             ("How many photos of Alice?", ["Alice is in 14 photos."]),
             ("Where was Max?", ["Max was photographed at 2 places: 48.85, 2.35 (3 photos); 40.7, -74.0 (1 photo)."]),
             ("When did I first see Mia and Sam together?", ["Mia and Sam were first together on 2020-06-01."])]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "cache" / "smollm2-135m-instruct")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "answer_stop.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    load_s, phraser = timed(lambda: phrase.Phraser(cache_dir=args.cache))
    never_stop = lambda lm: (lambda new: False)  # noqa: E731 - the old way
    first_line_stop = phrase._first_line_stop
    rows, same = [], True
    for r in range(args.rounds):
        for question, facts in QUESTIONS:
            row = {"question": question}
            ask = partial(phraser.phrase, question, facts)
            # the first question of a session: examples read at question time (old) vs ahead by warm() (preload)
            phraser._prefix = None
            row["not_preloaded_s"], cold = timed(ask)
            phraser._prefix = None
            row["preload_warm_s"], _ = timed(phraser.warm)
            row["preloaded_s"], warm = timed(ask)
            # stopping at the first line vs generating up to max_new_tokens / the end token
            order = ("stop", "no_stop") if r % 2 == 0 else ("no_stop", "stop")
            answers = {}
            for name in order:
                phrase._first_line_stop = first_line_stop if name == "stop" else never_stop
                row[f"{name}_s"], answers[name] = timed(ask)
            phrase._first_line_stop = first_line_stop
            row["answer"] = answers["stop"]
            same &= len({cold, warm, answers["stop"], answers["no_stop"]}) == 1
            rows.append(row)
            print(json.dumps(row), flush=True)

    def total(key):
        return round(sum(x[key] for x in rows), 2)

    result = {"load_s": round(load_s, 2), "rounds": args.rounds, "same_answers": same, "rows": rows,
              "totals_s": {k: total(k) for k in ("not_preloaded_s", "preload_warm_s", "preloaded_s", "stop_s",
                                                  "no_stop_s")},
              "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()]}
    result["stop_ratio"] = round(result["totals_s"]["stop_s"] / result["totals_s"]["no_stop_s"], 3)
    result["preloaded_ratio"] = round(result["totals_s"]["preloaded_s"] / result["totals_s"]["not_preloaded_s"], 3)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
