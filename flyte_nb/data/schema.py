"""The run store's schema, as numbered migrations.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1`` (``PRAGMA user_version``); a
new store applies them all. Append, never edit: a file written by any released version must
still open. Values (inputs, outputs, pickled errors) are BLOBs inline, or TEXT: the digest of a
file under ``blobs/``.
"""

from __future__ import annotations

APPLICATION_ID = 0x464E4231  # "FNB1" in the SQLite header: marks the file as ours

_V1 = """
-- version 1: runs, actions and attempts keyed by run name
CREATE TABLE runs (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,                 -- task name of the driver
    phase TEXT NOT NULL,                  -- queued, running, succeeded, failed, aborted
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, updated_at REAL,
    abort_reason TEXT,
    error_type TEXT, error_message TEXT, error_traceback TEXT, error_blob BLOB,
    retry_of TEXT,                        -- the run this one retried
    actions INTEGER NOT NULL DEFAULT 0,
    counts TEXT,                          -- JSON {phase: count}
    pid INTEGER, host TEXT, process TEXT, -- the kernel that ran it: dead-kernel detection
    version TEXT                          -- flyte_nb version that recorded it
);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_phase ON runs (phase);
CREATE TABLE actions (
    run TEXT NOT NULL, number INTEGER NOT NULL, parent INTEGER,
    task TEXT NOT NULL, grp TEXT, tags TEXT, backend TEXT, map_index INTEGER,
    phase TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL, started_at REAL, ended_at REAL,
    code TEXT,                            -- digest of the task's identity (name, code or version, salt)
    cache_key TEXT,                       -- identity + inputs, for actions of cached tasks
    inputs BLOB, outputs BLOB,            -- pickled values: BLOB inline, TEXT = digest of a file in blobs/
    error_type TEXT, error_message TEXT, error_traceback TEXT, error_blob BLOB,
    note TEXT,                            -- why a value was not recorded (unpicklable ...)
    PRIMARY KEY (run, number)
) WITHOUT ROWID;
CREATE TABLE attempts (                   -- every attempt of actions that were retried
    run TEXT NOT NULL, action INTEGER NOT NULL, number INTEGER NOT NULL,
    phase TEXT NOT NULL, started_at REAL, ended_at REAL,
    error_type TEXT, error_message TEXT, error_traceback TEXT,
    PRIMARY KEY (run, action, number)
) WITHOUT ROWID;
CREATE TABLE cache (
    id INTEGER PRIMARY KEY,               -- increasing: kernels load only entries newer than they know
    key TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL,                   -- task identity; entries are loaded per identity
    task TEXT NOT NULL,
    output BLOB NOT NULL,                 -- pickled output, as in actions.outputs
    run TEXT, action INTEGER, created_at REAL NOT NULL
);
CREATE INDEX cache_code ON cache (code, id);
"""

_V2 = """
-- version 2: integer run ids and a tasks table, so that action rows (one per task call) stay
-- small: half the SQLite work per recorded action. Tables are rebuilt, data carried over.
CREATE TABLE runs_v2 (
    id INTEGER PRIMARY KEY,               -- what actions point at: an integer key keeps their rows small
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,                 -- task name of the driver
    phase TEXT NOT NULL,                  -- queued, running, succeeded, failed, aborted
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, updated_at REAL,
    abort_reason TEXT,
    error_type TEXT, error_message TEXT, error_traceback TEXT, error_blob BLOB,
    retry_of TEXT,                        -- the run this one retried
    actions INTEGER NOT NULL DEFAULT 0,
    counts TEXT,                          -- JSON {phase: count}
    pid INTEGER, host TEXT, process TEXT, -- the kernel that ran it: dead-kernel detection
    version TEXT                          -- flyte_nb version that recorded it
);
INSERT INTO runs_v2 (name, driver, phase, created_at, started_at, ended_at, updated_at, abort_reason, error_type,
    error_message, error_traceback, error_blob, retry_of, actions, counts, pid, host, process, version)
SELECT name, driver, phase, created_at, started_at, ended_at, updated_at, abort_reason, error_type,
    error_message, error_traceback, error_blob, retry_of, actions, counts, pid, host, process, version
FROM runs ORDER BY created_at;
CREATE TABLE tasks (                      -- one row per task identity; actions point here
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL, backend TEXT,
    code TEXT NOT NULL,                   -- digest of the task's identity (name, code or version, salt)
    UNIQUE (code, name, backend)
);
INSERT OR IGNORE INTO tasks (name, backend, code) SELECT DISTINCT task, backend, coalesce(code, '') FROM actions;
CREATE TABLE actions_v2 (
    run INTEGER NOT NULL,                 -- runs.id
    number INTEGER NOT NULL, parent INTEGER,
    task INTEGER NOT NULL,                -- tasks.id
    grp TEXT, tags TEXT, map_index INTEGER,
    phase TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL, started_at REAL, ended_at REAL,
    cache_key TEXT,                       -- identity + inputs, for actions of cached tasks
    inputs BLOB, outputs BLOB,            -- pickled values: BLOB inline, TEXT = digest of a file in blobs/
    error_type TEXT, error_message TEXT, error_traceback TEXT, error_blob BLOB,
    note TEXT,                            -- why a value was not recorded (unpicklable ...)
    PRIMARY KEY (run, number)
) WITHOUT ROWID;
INSERT INTO actions_v2 SELECT r.id, a.number, a.parent, t.id, a.grp, a.tags, a.map_index, a.phase, a.attempts,
    a.queued_at, a.started_at, a.ended_at, a.cache_key, a.inputs, a.outputs, a.error_type, a.error_message,
    a.error_traceback, a.error_blob, a.note
FROM actions a JOIN runs_v2 r ON r.name = a.run
JOIN tasks t ON t.name = a.task AND t.backend IS a.backend AND t.code = coalesce(a.code, '');
CREATE TABLE attempts_v2 (                -- every attempt of actions that were retried
    run INTEGER NOT NULL, action INTEGER NOT NULL, number INTEGER NOT NULL,
    phase TEXT NOT NULL, started_at REAL, ended_at REAL,
    error_type TEXT, error_message TEXT, error_traceback TEXT,
    PRIMARY KEY (run, action, number)
) WITHOUT ROWID;
INSERT INTO attempts_v2 SELECT r.id, x.action, x.number, x.phase, x.started_at, x.ended_at, x.error_type,
    x.error_message, x.error_traceback FROM attempts x JOIN runs_v2 r ON r.name = x.run;
CREATE TABLE cache_v2 (
    id INTEGER PRIMARY KEY,               -- increasing: kernels load only entries newer than they know
    key TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL,                   -- task identity; entries are loaded per identity
    task TEXT NOT NULL,
    output BLOB NOT NULL,                 -- pickled output, as in actions.outputs
    run INTEGER, action INTEGER, created_at REAL NOT NULL -- the action that produced it
);
INSERT INTO cache_v2 SELECT c.id, c.key, c.code, c.task, c.output, r.id, c.action, c.created_at
FROM cache c LEFT JOIN runs_v2 r ON r.name = c.run;
DROP TABLE runs;
DROP TABLE actions;
DROP TABLE attempts;
DROP TABLE cache;
ALTER TABLE runs_v2 RENAME TO runs;
ALTER TABLE actions_v2 RENAME TO actions;
ALTER TABLE attempts_v2 RENAME TO attempts;
ALTER TABLE cache_v2 RENAME TO cache;
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_phase ON runs (phase);
CREATE INDEX cache_code ON cache (code, id);
"""

_V3 = """
-- version 3: what the Jupyter server extension shows and asks: where a run came from (notebook,
-- kernel, cell), its limits (for the slot-occupancy timeline), abort requests from outside the
-- kernel, and what actions printed (a table of its own: most actions print nothing).
ALTER TABLE runs ADD COLUMN notebook TEXT;        -- absolute path of the notebook whose kernel started it
ALTER TABLE runs ADD COLUMN kernel TEXT;          -- Jupyter kernel id
ALTER TABLE runs ADD COLUMN cell TEXT;            -- id of the cell that started it (JupyterLab's cellId)
ALTER TABLE runs ADD COLUMN groups TEXT;          -- JSON {group: [total, capacity]}
ALTER TABLE runs ADD COLUMN pools TEXT;           -- JSON {pool: capacity}
ALTER TABLE runs ADD COLUMN abort_request TEXT;   -- reason, set by another process; the owning kernel aborts
CREATE INDEX runs_kernel ON runs (kernel, cell);
CREATE TABLE logs (
    run INTEGER NOT NULL, action INTEGER NOT NULL,
    text TEXT NOT NULL,                   -- stdout and stderr of the body, the last 256 KiB
    PRIMARY KEY (run, action)
) WITHOUT ROWID;
"""

_V4 = """
-- version 4: what the Runs panel reads of a large run, kept as the run goes, so that reading it
-- costs the same at ten actions or a million: counts per group, the slot-occupancy timeline, and
-- an index of failed actions only (a partial index: nothing for the actions that succeeded).
ALTER TABLE runs ADD COLUMN group_counts TEXT;    -- JSON {group: {phase: count}}
ALTER TABLE runs ADD COLUMN timeline TEXT;        -- JSON, as the server's run detail gives it
CREATE INDEX actions_errors ON actions (run, number) WHERE error_type IS NOT NULL;
"""

_V5 = """
-- version 5: why each action waited, as its lifecycle goes: one row each time a pool made it wait
-- ("waiting for rate llm", then perhaps "waiting for tag db"); an action that started at once has none.
CREATE TABLE waits (
    run INTEGER NOT NULL, action INTEGER NOT NULL,
    at REAL NOT NULL,                     -- when it began to wait for this pool
    pool TEXT NOT NULL,                   -- the pool's name, <kind>:<name>
    PRIMARY KEY (run, action, at)
) WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5]
SCHEMA_VERSION = len(MIGRATIONS)
