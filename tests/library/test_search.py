import pytest

from myvlm_desktop.library.db import now
from myvlm_desktop.library.search import QueryError, parse, search


@pytest.fixture
def filled(library):
    """Six photos with captions, dates and two concepts, written straight into the tables."""
    photos = [
        (1, "/p/2023/beach.jpg", "2023-06-14T10:00:00", "Alice and Rex running on the beach at sunset"),
        (2, "/p/2023/park.jpg", "2023-07-02T09:00:00", "Rex holding a red ball in the park"),
        (3, "/p/2022/cake.jpg", "2022-12-24T19:00:00", "a birthday cake with candles"),
        (4, "/p/2024/beach2.jpg", "2024-08-01T12:00:00", "people on a sandy beach"),
        (5, "/p/2023/sofa.jpg", "2023-08-31T23:59:59", "Alice reading a book on the sofa"),
        (6, "/p/gone.jpg", "2023-06-15T10:00:00", "beach beach beach"),
    ]

    def fill(conn):
        for pid, path, date, caption in photos:
            status = "missing" if pid == 6 else "ok"
            conn.execute("INSERT INTO photos(id, path, date, status, added_at, updated_at) VALUES (?,?,?,?,?,?)",
                         (pid, path, date, status, now(), now()))
            conn.execute("INSERT INTO photo_text(rowid, path, captions, answers, concepts) VALUES (?,?,?,?,?)",
                         (pid, path, caption, "", ""))
        conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (1,'Alice','person','<Alice>',0)")
        conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (2,'Rex','pet','<Rex>',0)")
        conn.execute("INSERT INTO concepts(id, name, kind, identifier, created_at) VALUES (3,'Uncle Bob','person','<Uncle Bob>',0)")
        for pid, cid in [(1, 1), (1, 2), (2, 2), (5, 1), (6, 1)]:
            conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, created_at) VALUES (?,?,'head',0)",
                         (pid, cid))
        # the user said Rex is not in photo 2, whatever the head thinks
        conn.execute("INSERT INTO occurrences(photo_id, concept_id, source, present, created_at) VALUES (2,2,'user',0,0)")

    library.db.write(fill)
    return library


def ids(library, query):
    return sorted(h["photo_id"] for h in search(library.db, query))


def test_words_phrases_and_prefixes(filled):
    assert ids(filled, "beach") == [1, 4]  # the missing photo is not shown
    assert ids(filled, '"birthday cake"') == [3]
    assert ids(filled, '"cake birthday"') == []
    assert ids(filled, "bea*") == [1, 4]
    assert ids(filled, "2023") == [1, 2, 5]  # a year is a date, not a word


def test_concepts_with_and_or_not_and_parentheses(filled):
    assert ids(filled, "@Alice") == [1, 5]
    assert ids(filled, "@alice") == [1, 5]
    assert ids(filled, "@<Alice>") == [1, 5]  # the identifier form works too
    assert ids(filled, "@Rex") == [1]  # the user's "not Rex" on photo 2 wins over the head
    assert ids(filled, "@Alice AND @Rex") == [1]
    assert ids(filled, "@Alice @Rex") == [1]
    assert ids(filled, "@Alice OR ball") == [1, 2, 5]
    assert ids(filled, "@Alice NOT beach") == [5]
    assert ids(filled, "@Alice -beach") == [5]
    assert ids(filled, "(@Rex OR cake) AND NOT 2022") == [1]
    assert ids(filled, '@"Uncle Bob"') == []


def test_dates_months_days_and_ranges(filled):
    assert ids(filled, "2023-06") == [1]
    assert ids(filled, "2023-07..2023-08") == [2, 5]
    assert ids(filled, "2023-08-31") == [5]
    assert ids(filled, "2022..2023-06") == [1, 3]
    assert ids(filled, "@Alice 2023-06..2023-08 beach") == [1]


def test_ranking_puts_stronger_matches_first(filled):
    hits = search(filled.db, "beach OR sunset")
    assert [h["photo_id"] for h in hits] == [1, 4]
    assert hits[0]["score"] > hits[1]["score"]  # photo 1 also matches "sunset"


@pytest.mark.parametrize("query, message", [
    ("", "empty query"),
    ("   ", "empty query"),
    ("(beach", "unclosed '('"),
    ("beach)", "unexpected ')'"),
    ('"open phrase', "unclosed quote"),
    ("beach AND", "needs something after it"),
    ("OR beach", "unexpected 'OR'"),
    ("NOT", "needs something after it"),
    ("@", "needs a name"),
    ("2023-13", "not a real date"),
    ("2023-02-30", "not a real date"),
    ("2024..2023", "ends before it starts"),
    ("2023..june", "a date range looks like"),
    ("@Nobody", "no one and nothing is called @Nobody"),
    ("***", "no letters or digits"),
])
def test_malformed_queries_get_a_clear_message(filled, query, message):
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        search(filled.db, query)


@pytest.mark.parametrize("query", ["NEAR(beach)", "a:b", "^beach", "beach + sunset", "captions:beach", "{beach}",
                                   "beach*sunset", "AND", "'", "\\", "%", "_", "é", "💥"])
def test_fts_syntax_in_user_words_is_taken_literally(filled, query):
    try:
        hits = search(filled.db, query)
    except QueryError as exc:
        assert str(exc)  # a clear message is fine; any other exception is a bug
    else:
        assert all(h["photo_id"] in {1, 2, 3, 4, 5} for h in hits)


def test_fts_operators_are_not_interpreted(filled):
    assert ids(filled, "captions:beach") == []  # no column filter sneaks through
    assert ids(filled, "NEAR(beach)") == []


def test_parse_tree_shape():
    tree = parse("@A b OR c")
    assert type(tree).__name__ == "Or" and type(tree.children[0]).__name__ == "And"
