"""From no model to a personalized caption, through the CLI: download, train, caption, search, ask."""

from __future__ import annotations

import json
import time

import pytest

from tests.models.test_hub_download import SMOLVLM, myvlm, record
from tests.pipeline.test_train_job import eileen  # noqa: F401 - the fixture


@pytest.mark.slow
def test_download_train_caption_search_and_ask(hub, eileen):  # noqa: F811
    library, _concept_id = eileen
    data = str(library.root)
    timings = {}

    def run(*argv, timeout=600):
        started = time.monotonic()
        done = myvlm(hub.env, "--data-dir", data, *argv, timeout=timeout)
        timings[argv[0]] = round(time.monotonic() - started, 1)
        assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
        return done

    missing = myvlm(hub.env, "--data-dir", data, "train", "Eileen", "--steps", "5")
    assert missing.returncode == 1 and "myvlm models download" in missing.stderr  # no model yet: says how
    run("models", "download", SMOLVLM)
    trained = run("train", "Eileen", "--json")
    assert json.loads(trained.stdout)["concept"] == "Eileen"
    run("caption", "--all", "--json")
    captions = {r["path"]: (r["text"], json.loads(r["concepts"])) for r in library.db.query(
        "SELECT p.path, c.text, c.concepts FROM captions c JOIN photos p ON p.id = c.photo_id")}
    hers = {p for p in captions if "eileen" in p}
    assert len(captions) == 5 and len(hers) == 3
    for path, (text, concepts) in captions.items():
        if path in hers:  # the learnt vector makes the frozen model write her identifier
            assert concepts == ["Eileen"] and "<Eileen>" in text, (path, text)
        else:  # the control: photos without her are captioned without it
            assert concepts == [] and "Eileen" not in text, (path, text)
    # a phrase only the stored captions hold (the paths say "eileen1.jpg", the concept column "Eileen")
    found = run("search", '"photo of Eileen"', "--json")
    assert sorted(p["path"] for p in json.loads(found.stdout)) == sorted(hers), found.stdout
    path = sorted(hers)[0]
    answer = run("ask", path, "What is <Eileen> doing?", "--json")
    assert "<Eileen>" in json.loads(answer.stdout)["answer"], answer.stdout  # answered about her, by name
    record("end_to_end", {"seconds": timings, "captions": {p: t for p, (t, _) in captions.items()}})
