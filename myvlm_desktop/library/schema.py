"""The database schema as an ordered list of migrations; `PRAGMA user_version` says how many ran.

Append new migrations; never edit one that has shipped. Embeddings are float32 BLOBs. Everything a user
decided (names, merges, hidden or rejected faces, captions, answers) lives in tables that a rescan or a
model change never drops.
"""

MIGRATIONS: list[str] = [
    # 1: the library, perception, people, concepts, captions, jobs
    """
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at REAL NOT NULL,
        watch INTEGER NOT NULL DEFAULT 1
    );

    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER REFERENCES folders(id) ON DELETE SET NULL,
        path TEXT NOT NULL UNIQUE,          -- absolute; undecodable bytes shown as \\xNN
        path_raw BLOB,                      -- the real name's bytes when it is not valid UTF-8
        hash TEXT,                          -- blake2b of the content
        size INTEGER,
        mtime REAL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        orientation INTEGER,
        taken_at TEXT,                      -- EXIF date taken, ISO 8601
        date TEXT,                          -- taken_at, else the file's mtime: what search and sort use
        lat REAL,
        lon REAL,
        camera TEXT,
        status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'error', 'missing')),
        error TEXT,
        added_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX photos_hash ON photos(hash);
    CREATE INDEX photos_status_date ON photos(status, date);

    CREATE VIRTUAL TABLE photo_text USING fts5(
        path, captions, answers, concepts,
        tokenize = 'unicode61 remove_diacritics 2'
    );

    CREATE TABLE index_state (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        stage TEXT NOT NULL,                -- 'faces' or 'embedding'
        engine TEXT NOT NULL,               -- engine name + version that processed the photo
        error TEXT,
        done_at REAL NOT NULL,
        PRIMARY KEY (photo_id, stage)
    );

    CREATE TABLE concepts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        kind TEXT NOT NULL CHECK (kind IN ('person', 'pet', 'object')),
        identifier TEXT NOT NULL,           -- how captions say it, e.g. <Alice>
        version INTEGER NOT NULL DEFAULT 1, -- bumped whenever its examples change: heads retrain
        created_at REAL NOT NULL
    );

    CREATE TABLE clusters (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('face', 'image')),
        concept_id INTEGER REFERENCES concepts(id) ON DELETE SET NULL,
        cover_face_id INTEGER,
        cover_photo_id INTEGER,
        hidden INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX clusters_concept ON clusters(concept_id);

    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,  -- oriented pixels
        landmarks TEXT,                     -- JSON [[x, y] x 5]
        score REAL,
        embedding BLOB NOT NULL,            -- float32, L2-normalised
        engine TEXT NOT NULL,               -- engine name + version
        cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL,
        assigned_by TEXT NOT NULL DEFAULT 'auto' CHECK (assigned_by IN ('auto', 'user')),
        hidden INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX faces_photo ON faces(photo_id);
    CREATE INDEX faces_cluster ON faces(cluster_id);
    CREATE INDEX faces_engine ON faces(engine);

    CREATE TABLE image_embeddings (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        embedder TEXT NOT NULL,             -- embedder name + version
        embedding BLOB NOT NULL,            -- float32, L2-normalised
        created_at REAL NOT NULL,
        PRIMARY KEY (photo_id, embedder)
    );

    CREATE TABLE cluster_photos (           -- members of image clusters (pets, objects)
        cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        assigned_by TEXT NOT NULL DEFAULT 'auto' CHECK (assigned_by IN ('auto', 'user')),
        PRIMARY KEY (cluster_id, photo_id)
    );

    CREATE TABLE rejections (               -- "not Alice": never assigned back automatically
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        face_id INTEGER REFERENCES faces(id) ON DELETE CASCADE,
        photo_id INTEGER REFERENCES photos(id) ON DELETE CASCADE,
        created_at REAL NOT NULL
    );
    CREATE INDEX rejections_concept ON rejections(concept_id);

    CREATE TABLE occurrences (              -- who and what is in a photo, by a head or by the user
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        face_id INTEGER REFERENCES faces(id) ON DELETE SET NULL,
        score REAL,
        source TEXT NOT NULL CHECK (source IN ('head', 'user')),
        present INTEGER NOT NULL DEFAULT 1, -- a user's "not in this photo" is a row with present = 0
        head_version TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (photo_id, concept_id, source)
    );
    CREATE INDEX occurrences_concept ON occurrences(concept_id);

    CREATE TABLE operations (               -- the undo log: every user operation, with its inverse
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        redo TEXT NOT NULL,                 -- JSON: rows to write to redo it
        undo TEXT NOT NULL,                 -- JSON: rows to write to undo it
        state TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('done', 'undone')),
        created_at REAL NOT NULL
    );

    CREATE TABLE captions (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        backend TEXT NOT NULL,
        model TEXT NOT NULL,
        concepts TEXT NOT NULL DEFAULT '[]',         -- JSON names used
        concept_versions TEXT NOT NULL DEFAULT '{}', -- JSON {concept_id: version}
        created_at REAL NOT NULL
    );
    CREATE INDEX captions_photo ON captions(photo_id, created_at);

    CREATE TABLE answers (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER REFERENCES photos(id) ON DELETE CASCADE,  -- NULL: a question about the library
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        backend TEXT NOT NULL,
        model TEXT,
        concepts TEXT NOT NULL DEFAULT '[]',
        facts TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX answers_photo ON answers(photo_id, created_at);

    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')),
        progress REAL NOT NULL DEFAULT 0,
        message TEXT,
        checkpoint TEXT,                    -- JSON the job needs to resume
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL                 -- JSON
    );

    -- Photos in which a concept is present: named clusters' faces and photos, heads, user marks;
    -- a user's "not in this photo" and rejected faces win over everything else.
    CREATE VIEW concept_photos AS
        SELECT c.concept_id, f.photo_id FROM faces f JOIN clusters c ON c.id = f.cluster_id
            WHERE c.concept_id IS NOT NULL AND f.hidden = 0
        UNION
        SELECT c.concept_id, cp.photo_id FROM cluster_photos cp JOIN clusters c ON c.id = cp.cluster_id
            WHERE c.concept_id IS NOT NULL
        UNION
        SELECT o.concept_id, o.photo_id FROM occurrences o
            WHERE o.present = 1 AND NOT EXISTS (
                SELECT 1 FROM occurrences u WHERE u.photo_id = o.photo_id AND u.concept_id = o.concept_id
                AND u.source = 'user' AND u.present = 0)
            AND NOT EXISTS (SELECT 1 FROM rejections r WHERE r.concept_id = o.concept_id AND r.face_id = o.face_id)
        EXCEPT
        SELECT u.concept_id, u.photo_id FROM occurrences u WHERE u.source = 'user' AND u.present = 0
        EXCEPT  -- "Rex is not in this photo" (a photo rejection; a face rejection has face_id set)
        SELECT r.concept_id, r.photo_id FROM rejections r WHERE r.face_id IS NULL AND r.photo_id IS NOT NULL;
    """,
    # 2: a folder whose drive or share went away is offline (its photos wait for it), not missing
    """
    ALTER TABLE folders ADD COLUMN offline_since REAL;
    """,
    # 3: names imported from photo metadata (XMP regions and keywords), and faces that came from them
    """
    ALTER TABLE faces ADD COLUMN source TEXT NOT NULL DEFAULT 'detected';  -- 'detected' or 'metadata'

    CREATE TABLE metadata_names (           -- what each photo's metadata said, and what became of it
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,                 -- person or pet
        origin TEXT NOT NULL,               -- mwg, mp (a region) or keyword (a name for the whole photo)
        x1 REAL, y1 REAL, x2 REAL, y2 REAL, -- normalised, displayed frame; NULL for a keyword
        face_id INTEGER REFERENCES faces(id) ON DELETE SET NULL,
        concept_id INTEGER REFERENCES concepts(id) ON DELETE SET NULL,
        outcome TEXT NOT NULL,              -- named, already, conflict, hint, pending, skipped
        detail TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX metadata_names_photo ON metadata_names(photo_id);

    CREATE TABLE metadata_imports (         -- the metadata state last imported, so unchanged photos are skipped
        photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        signature TEXT NOT NULL,
        done_at REAL NOT NULL
    );
    """,
    # 4: which face detectors looked at a photo, so a cascade's second look can reach photos its first
    # detector alone indexed (same engine id, so they are not re-indexed); NULL: indexed before it was recorded
    """
    ALTER TABLE index_state ADD COLUMN detector TEXT;  -- e.g. 'hog' or 'hog+mtcnn'; NULL for embeddings
    """,
]
