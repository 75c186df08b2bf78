"""Backups: taken before migrations and daily, kept to the newest N; a damaged database is refused with a
message naming the newest backup, and a restore brings the library back."""

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from myvlm_desktop.library import backup
from myvlm_desktop.library import db as dbmod
from myvlm_desktop.library.schema import MIGRATIONS
from myvlm_desktop.library.store import Library


def _name_someone(lib: Library, name: str = "Alice") -> None:
    def write(conn):
        conn.execute("INSERT INTO concepts(name, kind, identifier, created_at) VALUES (?, 'person', ?, 0)",
                     (name, f"<{name}>"))
        conn.execute("INSERT INTO settings(key, value) VALUES ('watch', 'false') "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    lib.db.write(write)


def _cli(data, *args):
    return subprocess.run([sys.executable, "-m", "myvlm_desktop.cli", "--data-dir", str(data), *args],
                          check=False, capture_output=True, text=True, timeout=120)


def test_backup_is_a_consistent_copy_and_only_the_newest_are_kept(tmp_path):
    database = dbmod.Database(tmp_path / "library.sqlite3", backup_every=None)
    database.write(lambda c: c.execute("INSERT INTO settings(key, value) VALUES ('a', '1')"))
    made = [database.backup() for _ in range(backup.KEEP + 3)]
    database.close()
    kept = backup.backups(tmp_path / "library.sqlite3")
    assert kept == list(reversed(made))[:backup.KEEP]
    conn = sqlite3.connect(kept[0])
    assert conn.execute("SELECT value FROM settings WHERE key = 'a'").fetchone()[0] == "1"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_daily_backup_is_taken_once_a_day(tmp_path):
    path = tmp_path / "library.sqlite3"
    dbmod.Database(path, backup_every=None).close()
    database = dbmod.Database(path)  # the daily check runs at open
    deadline = time.monotonic() + 10
    while not backup.backups(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(backup.backups(path)) == 1
    assert database.maintain(backup.backup_if_due, path, backup.DAY) is None  # not due again today
    assert database.maintain(backup.backup_if_due, path, 0.0) is not None
    database.close()


def test_a_migration_is_preceded_by_a_backup(tmp_path, monkeypatch):
    path = tmp_path / "library.sqlite3"
    dbmod.Database(path, backup_every=None).close()
    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, "CREATE TABLE later_feature (id INTEGER PRIMARY KEY);"])
    dbmod.Database(path, backup_every=None).close()
    made = backup.backups(path)
    assert len(made) == 1 and f"before-schema-{len(MIGRATIONS) + 1}" in made[0].name
    conn = sqlite3.connect(made[0])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)  # the state before it ran
    conn.close()


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_a_damaged_database_is_refused_naming_the_newest_backup_and_restore_brings_it_back(tmp_path, damage):
    data = tmp_path / "data"
    lib = Library(data)
    _name_someone(lib)
    for i in range(300):  # enough pages that damage lands inside the tables
        lib.db.write(lambda c, i=i: c.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (f"k{i}", "x" * 400)))
    made = str(lib.db.backup())
    lib.close()
    db_file = data / "library.sqlite3"
    size = db_file.stat().st_size
    with open(db_file, "r+b") as handle:
        if damage == "truncate":
            handle.truncate(size // 2)
        else:
            for page in range(1, size // 4096, 3):  # keep the header, scribble over every third page
                handle.seek(page * 4096)
                handle.write(b"\xde\xad" * 2048)
    with pytest.raises(backup.DatabaseDamaged, match=made.replace("\\", "\\\\")):
        Library(data)
    refused = _cli(data, "status")
    assert refused.returncode == 2 and "damaged" in refused.stderr and made in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    restored = _cli(data, "restore", made)
    assert restored.returncode == 0, restored.stderr
    with Library(data) as again:
        assert again.db.scalar("SELECT name FROM concepts") == "Alice"
        assert again.db.scalar("SELECT count(*) FROM settings") == 301
    kept_aside = list(backup.backups_dir(db_file).glob("damaged-*.sqlite3"))
    assert len(kept_aside) == 1  # the damaged file is kept, not deleted


def test_cli_backup_prints_its_path_and_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    data = tmp_path / "data"
    with Library(data) as lib:
        _name_someone(lib)
    made = _cli(data, "backup", "--json")
    assert made.returncode == 0, made.stderr
    path = json.loads(made.stdout)["path"]
    assert sqlite3.connect(path).execute("SELECT name FROM concepts").fetchone()[0] == "Alice"
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    refused = _cli(data, "restore", str(junk))
    assert refused.returncode == 2 and "not a library backup" in refused.stderr
    with Library(data) as lib:  # nothing was touched
        assert lib.db.scalar("SELECT name FROM concepts") == "Alice"


def test_live_restore_brings_back_names_and_decisions(tmp_path):
    with Library(tmp_path / "data") as lib:
        _name_someone(lib, "Alice")
        saved = lib.db.backup()
        lib.db.write(lambda c: c.execute("DELETE FROM concepts"))
        _name_someone(lib, "Mallory")
        seen = []
        lib.db.subscribe(lambda what, detail: seen.append(what))
        lib.db.restore(saved)
        assert [r["name"] for r in lib.db.query("SELECT name FROM concepts")] == ["Alice"]
        assert lib.db.scalar("PRAGMA journal_mode") == "wal"
        assert "restored" in seen
        lib.db.write(lambda c: c.execute("INSERT INTO settings(key, value) VALUES ('after', '1')"))
    with Library(tmp_path / "data") as lib:
        assert lib.db.scalar("SELECT value FROM settings WHERE key = 'after'") == "1"
        assert lib.db.scalar("PRAGMA integrity_check") == "ok"


def test_restore_makes_heads_and_embeddings_of_another_version_stale(tmp_path):
    from myvlm_desktop import config
    from myvlm_desktop.pipeline.restore import restore_library

    data = tmp_path / "data"
    with Library(data) as lib:
        _name_someone(lib, "Alice")
        _name_someone(lib, "Bob")
        saved = lib.db.backup()  # Alice and Bob at version 1
        ids = {r["name"]: r["id"] for r in lib.db.query("SELECT id, name FROM concepts")}
        lib.db.write(lambda c: c.execute("UPDATE concepts SET version = 3 WHERE name = 'Alice'"))
    concepts = config.concepts_dir(data)
    for name, version in (("Alice", 3), ("Bob", 1)):  # Alice's head was trained after the backup, Bob's before
        (concepts / str(ids[name])).mkdir(parents=True)
        (concepts / str(ids[name]) / "head.json").write_text(json.dumps({"concept_version": version}))
    (concepts / "99").mkdir()  # a concept the backup does not know
    result = restore_library(data, saved)
    assert result["retrain"] == [ids["Alice"]] and result["orphaned"] == 1
    with Library(data) as lib:
        versions = {r["name"]: r["version"] for r in lib.db.query("SELECT name, version FROM concepts")}
    assert versions == {"Alice": 4, "Bob": 1}  # newer than any file: the old head can never look current
    assert not (concepts / "99").exists() and list(concepts.glob(".orphan-99-*"))
