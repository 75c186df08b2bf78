"""From no model to a personalized caption, through the CLI: download, train, caption, search, ask."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.models.test_hub_download import SMOLVLM, myvlm, record
from tests.pipeline.test_train_job import eileen  # noqa: F401 - the fixture


@pytest.mark.slow
def test_download_train_caption_search_and_ask(hub, eileen):  # noqa: F811
    library, concept_id = eileen
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
    rows = library.db.query("SELECT c.photo_id, c.text, c.concepts FROM captions c JOIN concept_photos cp "
                            "ON cp.photo_id = c.photo_id AND cp.concept_id = ?", (concept_id,))
    # every photo of Eileen is captioned with her embedding (a random tiny model writes noise around it)
    assert len(rows) == 3 and all(json.loads(r[2]) == ["Eileen"] for r in rows)
    photo_id, caption = rows[0][0], rows[0][1]
    word = max(re.findall(r"[A-Za-z]{3,}", caption), key=len)  # a word only the stored caption holds
    found = run("search", f"@<Eileen> {word}", "--json")
    path = library.db.scalar("SELECT path FROM photos WHERE id = ?", (photo_id,))
    assert path in [p["path"] for p in json.loads(found.stdout)], found.stdout
    answer = run("ask", path, "What is <Eileen> doing?", "--json")
    assert json.loads(answer.stdout)["answer"].strip()
    record("end_to_end", {"seconds": timings, "caption": caption})
