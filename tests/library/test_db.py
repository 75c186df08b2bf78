import sqlite3
import threading

import pytest

from myvlm_desktop.library import db as dbmod
from myvlm_desktop.library.schema import MIGRATIONS


def test_migrations_set_user_version_and_wal(tmp_path):
    database = dbmod.Database(tmp_path / "lib.sqlite3")
    assert database.scalar("PRAGMA user_version") == len(MIGRATIONS)
    assert database.scalar("PRAGMA journal_mode") == "wal"
    database.close()
    again = dbmod.Database(tmp_path / "lib.sqlite3")  # reopening runs nothing twice
    assert again.scalar("PRAGMA user_version") == len(MIGRATIONS)
    again.close()


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    conn = sqlite3.connect(tmp_path / "lib.sqlite3")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer MyVLM Desktop"):
        dbmod.Database(tmp_path / "lib.sqlite3")


def test_a_failing_write_rolls_back_and_the_writer_goes_on(tmp_path):
    database = dbmod.Database(tmp_path / "lib.sqlite3")

    def half_then_fail(conn):
        conn.execute("INSERT INTO settings(key, value) VALUES ('a', '1')")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        database.write(half_then_fail)
    assert database.scalar("SELECT count(*) FROM settings") == 0
    database.write(lambda c: c.execute("INSERT INTO settings(key, value) VALUES ('b', '2')"))
    assert database.scalar("SELECT value FROM settings WHERE key = 'b'") == "2"
    database.close()


def test_writes_from_many_threads_are_serialised(tmp_path):
    database = dbmod.Database(tmp_path / "lib.sqlite3")

    def bump(conn):
        value = conn.execute("SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM settings").fetchone()[0]
        conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES ('n', ?)", (str(value + 1),))

    threads = [threading.Thread(target=lambda: [database.write(bump) for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert database.scalar("SELECT value FROM settings WHERE key = 'n'") == "200"
    database.close()


def test_blobs_round_trip():
    import numpy as np

    v = np.arange(8, dtype=np.float64) / 7
    assert np.allclose(dbmod.from_blob(dbmod.to_blob(v)), v.astype(np.float32))
