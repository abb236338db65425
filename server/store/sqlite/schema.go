package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// Upload states, kept in lists.state (see listrow).
const (
	stateOpen       = listrow.StateOpen
	stateCommitted  = listrow.StateCommitted
	stateSuperseded = listrow.StateSuperseded
)

// posBits is how many low bits of a token's rowid hold its position within
// its list version; the high bits hold the list version id.
const posBits = 32

// maxPos bounds the number of entries of one list version, and maxListID the
// list version ids, so that listID<<posBits | pos fits in a positive int64.
const (
	maxPos    = 1<<posBits - 1
	maxListID = 1<<(63-posBits) - 1
)

// migrations are applied in order at open; the schema version is the number
// applied. Append new migrations, never edit applied ones.
var migrations = []string{
	`
-- One row per upload. Once committed, the row is a version of the list and
-- its id is the List.ID; a superseded row is kept, without its tokens, so that
-- retries of its upload are recognised.
CREATE TABLE lists (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	owner         TEXT    NOT NULL,
	name          TEXT    NOT NULL,
	upload_id     TEXT    NOT NULL,
	state         INTEGER NOT NULL,
	kind          TEXT    NOT NULL,
	key_id        TEXT    NOT NULL,
	category      TEXT    NOT NULL,
	jurisdiction  TEXT    NOT NULL,
	expires_at    INTEGER NOT NULL, -- Unix microseconds, 0: never
	consent_roles TEXT    NOT NULL, -- JSON array
	ngo_visible   INTEGER NOT NULL,
	normalization TEXT    NOT NULL, -- JSON object
	begun_at      INTEGER NOT NULL, -- Unix microseconds
	next_pos      INTEGER NOT NULL DEFAULT 0,
	entries       INTEGER NOT NULL DEFAULT 0,
	committed_at  INTEGER NOT NULL DEFAULT 0, -- Unix microseconds
	UNIQUE (owner, name, upload_id)
);
CREATE UNIQUE INDEX lists_current ON lists (owner, name) WHERE state = 1;
CREATE INDEX lists_visible ON lists (kind, key_id) WHERE state = 1;
CREATE INDEX lists_open ON lists (begun_at) WHERE state = 0;

-- The batches received for an upload: entries positions
-- first_pos..first_pos+entries-1 of the list version.
CREATE TABLE batches (
	list_id   INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
	seq       INTEGER NOT NULL,
	first_pos INTEGER NOT NULL,
	entries   INTEGER NOT NULL,
	PRIMARY KEY (list_id, seq)
) WITHOUT ROWID;

-- id is list_id<<32 | position: a list version is one rowid range.
CREATE TABLE tokens (
	id    INTEGER PRIMARY KEY,
	ref   INTEGER NOT NULL, -- the uint64 entry reference, bit for bit
	token BLOB    NOT NULL
);
CREATE INDEX tokens_prefix ON tokens (substr(token, 1, 8));
`,
	`
-- The decision log: canonical audit records (Merkle leaves), the Merkle
-- nodes their appends completed, the compact range state, and the signed
-- checkpoints.
CREATE TABLE log_records (
	idx    INTEGER PRIMARY KEY,
	record BLOB NOT NULL
);
CREATE TABLE log_nodes (
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB    NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE log_state (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	size  INTEGER NOT NULL,
	range BLOB    NOT NULL -- the compact range's hashes, concatenated
);
INSERT INTO log_state (id, size, range) VALUES (1, 0, x'');
CREATE TABLE checkpoints (
	size       INTEGER PRIMARY KEY,
	checkpoint BLOB NOT NULL
);

-- Two-step disclosure requests, pinned to committed list versions.
CREATE TABLE disclosure_requests (
	id                TEXT    PRIMARY KEY,
	requester         TEXT    NOT NULL,
	requester_list    TEXT    NOT NULL,
	requester_list_id INTEGER NOT NULL,
	owner             TEXT    NOT NULL,
	list              TEXT    NOT NULL,
	list_id           INTEGER NOT NULL,
	entry_refs        TEXT    NOT NULL, -- JSON array, [] = every match
	entries           INTEGER NOT NULL,
	reason            TEXT    NOT NULL,
	purpose           TEXT    NOT NULL,
	case_ref          TEXT    NOT NULL,
	status            TEXT    NOT NULL,
	created_at        INTEGER NOT NULL,
	answered_at       INTEGER NOT NULL DEFAULT 0,
	note              TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX disclosure_requests_owner ON disclosure_requests (owner, created_at);
CREATE INDEX disclosure_requests_requester ON disclosure_requests (requester, created_at);
CREATE INDEX disclosure_requests_grants ON disclosure_requests (requester_list_id) WHERE status = 'approved';

-- Owner notices: full disclosures of an owner's list.
CREATE TABLE notices (
	id             INTEGER PRIMARY KEY,
	owner          TEXT    NOT NULL,
	list           TEXT    NOT NULL,
	requester      TEXT    NOT NULL,
	requester_list TEXT    NOT NULL,
	entries        INTEGER NOT NULL,
	purpose        TEXT    NOT NULL,
	case_ref       TEXT    NOT NULL,
	time           INTEGER NOT NULL,
	decision_id    TEXT    NOT NULL
);
CREATE INDEX notices_owner ON notices (owner, id);
`,
	`
-- OPRF key ids the key server has reported: rank is the position in its
-- latest report (0 = newest), NULL once it no longer serves the key id.
CREATE TABLE key_epochs (
	key_id TEXT PRIMARY KEY,
	rank   INTEGER
) WITHOUT ROWID;
`,
	`
-- Each reported key keeps the public key it was first reported with.
ALTER TABLE key_epochs ADD COLUMN public_key BLOB;

-- Owner notices say which action disclosed.
ALTER TABLE notices ADD COLUMN action TEXT NOT NULL DEFAULT 'overlaps';

-- The requests made from one match reference form a group, which is what
-- the requester sees; requested is what the reference's answer showed it.
ALTER TABLE disclosure_requests ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
ALTER TABLE disclosure_requests ADD COLUMN requested INTEGER NOT NULL DEFAULT 0;
UPDATE disclosure_requests SET group_id = id, requested = entries;
CREATE INDEX disclosure_requests_group ON disclosure_requests (group_id);
CREATE INDEX disclosure_requests_pending ON disclosure_requests (requester_list_id, list_id) WHERE status = 'pending';

-- Entries each agency checked per UTC day (YYYY-MM-DD).
CREATE TABLE check_use (
	agency  TEXT    NOT NULL,
	day     TEXT    NOT NULL,
	entries INTEGER NOT NULL,
	PRIMARY KEY (agency, day)
) WITHOUT ROWID;
`,
	`
-- Standing matches: every pair of entries with equal tokens in the
-- committed versions of two owners' lists of one kind and key id, in both
-- directions: entry ref of list version list_id matches entry cp_ref of
-- cp_list_id. Overlaps reads the pairs of a list version from the primary
-- key; the pairs whose counterparty is a given entry are the mirror images
-- of its own, found by the primary key too.
CREATE TABLE matches (
	list_id    INTEGER NOT NULL,
	ref        INTEGER NOT NULL,
	cp_list_id INTEGER NOT NULL,
	cp_ref     INTEGER NOT NULL,
	PRIMARY KEY (list_id, ref, cp_list_id, cp_ref)
) WITHOUT ROWID;

-- What owners learn of the pairs of their entries (kind match or
-- retraction), in cursor order.
CREATE TABLE match_events (
	cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
	kind       TEXT    NOT NULL,
	owner      TEXT    NOT NULL,
	list_id    INTEGER NOT NULL,
	ref        INTEGER NOT NULL,
	cp_list_id INTEGER NOT NULL,
	time       INTEGER NOT NULL -- Unix microseconds
);
CREATE INDEX match_events_owner ON match_events (owner, cursor);
CREATE INDEX match_events_list ON match_events (list_id);
CREATE INDEX match_events_cp ON match_events (cp_list_id);

-- The pairs owners were alerted of: entry ref of list_id matched
-- cp_list_id.
CREATE TABLE alerted (
	list_id    INTEGER NOT NULL,
	ref        INTEGER NOT NULL,
	cp_list_id INTEGER NOT NULL,
	PRIMARY KEY (list_id, ref, cp_list_id)
) WITHOUT ROWID;
CREATE INDEX alerted_cp ON alerted (cp_list_id);

-- Entries withdrawn by their owner: they match nothing.
CREATE TABLE retractions (
	id      INTEGER PRIMARY KEY,
	list_id INTEGER NOT NULL,
	ref     INTEGER NOT NULL,
	reason  TEXT    NOT NULL,
	time    INTEGER NOT NULL, -- Unix microseconds
	UNIQUE (list_id, ref)
);

-- The pairs of the lists committed before this version, found as a
-- commit finds them. They are not announced as events: they were there
-- before, for Overlaps to find.
INSERT INTO matches (list_id, ref, cp_list_id, cp_ref)
SELECT DISTINCT la.id, a.ref, lb.id, b.ref
FROM lists AS la CROSS JOIN tokens AS a CROSS JOIN tokens AS b CROSS JOIN lists AS lb
WHERE la.state = 1
	AND a.id BETWEEN (la.id << 32) AND (la.id << 32 | 4294967295)
	AND substr(b.token, 1, 8) = substr(a.token, 1, 8)
	AND b.token = a.token
	AND lb.id = b.id >> 32
	AND lb.state = 1 AND lb.owner <> la.owner AND lb.kind = la.kind AND lb.key_id = la.key_id;
`,
	`
-- Match sets: for each two list versions with pairs, the distinct refs of
-- list_id's entries that match an entry of cp_list_id, packed as a ref set
-- (see matchrow.AppendRefSet). They summarize matches, in the
-- transactions that change it, so that Overlaps reads a row per
-- counterparty version instead of one per pair. A rowid table: sets of
-- large lists are large. Filled from the pairs by a backfill.
CREATE TABLE match_sets (
	list_id    INTEGER NOT NULL,
	cp_list_id INTEGER NOT NULL,
	refs       BLOB    NOT NULL,
	PRIMARY KEY (list_id, cp_list_id)
);
`,
}

// backfills compute, from the data stored, the tables that migrations
// add as summaries of others: after the migration that brings the schema
// to the version of its key, in the same transaction.
var backfills = map[int]func(context.Context, matchrow.Tx) error{
	6: matchrow.FillSets,
}

// migrate creates the schema version table if needed and applies the
// migrations the database lacks, all in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	return s.update(ctx, "migrate", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err {
		case nil:
		case sql.ErrNoRows:
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
		default:
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this program's %d", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if fill := backfills[i+1]; fill != nil {
				if err := fill(ctx, mtx{tx}); err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations))
		return err
	})
}
