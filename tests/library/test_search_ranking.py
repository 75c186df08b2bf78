"""Search with the ranking index gives exactly what plain SQL gives, and never a stale or deleted photo."""

import random

import pytest

from myvlm_desktop.library.db import now
from myvlm_desktop.library.ranking import current_index, keep_index
from myvlm_desktop.library.search import search
from myvlm_desktop.library.store import Library

WORDS = ["beach", "dog", "cat", "cake", "car", "park", "sunset", "snow", "café", "img_7"]
NAMES = ["Alice", "Rex", "Bob"]


def fill(conn, rows: int = 300, seed: int = 3) -> None:
    rng = random.Random(seed)
    for cid, name in enumerate(NAMES, start=1):
        conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (?,?,?,?,?)",
                     (cid, name, "person", f"<{name}>", 0))
    for pid in range(1, rows + 1):
        date = None if pid % 17 == 0 else f"{rng.randint(2020, 2023)}-{rng.randint(1, 12):02d}-01T00:00:00"
        status = "missing" if pid % 23 == 0 else "ok"
        caption = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
        conn.execute("INSERT INTO photos(id, path, date, status, added_at, updated_at) VALUES (?,?,?,?,?,?)",
                     (pid, f"/p/{pid}.jpg", date, status, now(), now()))
        conn.execute("INSERT INTO photo_text(rowid, path, captions, answers, concepts) VALUES (?,?,?,?,?)",
                     (pid, f"/p/{pid}.jpg", caption, "", ""))
        for cid in rng.sample([1, 2, 3], rng.choice([0, 1, 2])):
            conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) VALUES (?,?,'head',0)",
                         (pid, cid))
    for pid in range(5, rows, 29):  # the user's "not in this photo" wins over a head
        conn.execute("INSERT OR REPLACE INTO occurrences(photo_id, concept_id, source, present, created_at) "
                     "VALUES (?, 1, 'user', 0, 0)", (pid,))


@pytest.fixture
def pair(tmp_path):
    """The same library opened twice: plain SQL, and with the ranking index."""
    plain = Library(tmp_path / "data")
    plain.db.write(fill)
    indexed = Library(tmp_path / "data")
    keep_index(indexed.db, wait=True)
    yield plain, indexed
    indexed.close()
    plain.close()


QUERIES = ["beach", "beach dog", "beach OR cat OR beach", '"beach dog"', "ca*", "c*", "café", "img_7",
           "@Alice", "@Alice @Rex", "@Alice OR sunset", "(dog OR car) NOT @Rex", "-beach", "NOT 2021",
           "2021..2022-06", "@Bob park 2022", "NOT (snow 2023)", "sunset -@Alice", "nothingmatches"]


@pytest.mark.parametrize("order", ["auto", "date"])
def test_same_results_as_sql_in_the_same_order(pair, order):
    plain, indexed = pair
    conn = indexed.db.read()
    assert current_index(indexed.db, conn) is not None  # the fast path is the one under test
    for query in QUERIES:
        for limit, offset in [(500, 0), (7, 0), (7, 7), (0, 0), (-1, 3)]:
            expected = search(plain.db, query, limit=limit, offset=offset, order=order)
            assert search(indexed.db, query, limit=limit, offset=offset, order=order) == expected, query


def test_a_text_change_is_seen_at_once_and_the_index_catches_up(pair):
    plain, indexed = pair
    before = current_index(indexed.db, indexed.db.read())[0]
    plain.db.write(lambda c: c.execute("UPDATE photo_text SET captions = 'zebra zebra' WHERE rowid = 1"))
    assert [h["photo_id"] for h in search(indexed.db, "zebra")] == [1]  # the stale index was not used
    assert 1 not in [h["photo_id"] for h in search(indexed.db, "beach OR dog OR cat OR cake", limit=1000)]
    keep_index(indexed.db, wait=True)
    after = current_index(indexed.db, indexed.db.read())
    assert after is not None and after[0] is not before and after[0].stamp != before.stamp
    assert search(indexed.db, "zebra") == search(plain.db, "zebra")


def test_never_a_deleted_or_missing_photo(pair):
    plain, indexed = pair
    beach = [h["photo_id"] for h in search(indexed.db, "beach", limit=1000)]
    gone, missing = beach[0], beach[1]

    def change(conn):  # no text change: only the photos table says so
        conn.execute("DELETE FROM occurrences WHERE photo_id = ?", (gone,))
        conn.execute("DELETE FROM photos WHERE id = ?", (gone,))
        conn.execute("UPDATE photos SET status = 'missing' WHERE id = ?", (missing,))

    plain.db.write(change)
    found = [h["photo_id"] for h in search(indexed.db, "beach", limit=1000)]
    assert gone not in found and missing not in found
    assert found == [h["photo_id"] for h in search(plain.db, "beach", limit=1000)]
