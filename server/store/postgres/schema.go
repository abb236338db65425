package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// Upload states, kept in lists.state (see listrow).
const (
	stateOpen       = listrow.StateOpen
	stateCommitted  = listrow.StateCommitted
	stateSuperseded = listrow.StateSuperseded
)

// maxPos bounds the number of entries of one list version, and maxListID the
// list version ids (tokens.list_id is an integer), as in the sqlite store.
const (
	maxPos    = 1<<32 - 1
	maxListID = 1<<31 - 1
)

// migrations are applied in order at open; schema_migrations holds a row
// for each one applied. Append new migrations, never edit applied ones.
var migrations = []string{
	`
-- One row per upload. Once committed, the row is a version of the list and
-- its id is the List.ID; a superseded row is kept, without its tokens, so
-- that retries of its upload are recognised. Names sort bytewise (COLLATE
-- "C"), whatever the database's collation.
CREATE TABLE lists (
	id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner         text        NOT NULL,
	name          text        COLLATE "C" NOT NULL,
	upload_id     text        NOT NULL,
	state         smallint    NOT NULL,
	kind          text        NOT NULL,
	key_id        text        NOT NULL,
	category      text        NOT NULL,
	jurisdiction  text        NOT NULL,
	expires_at    timestamptz,          -- NULL: never
	consent_roles jsonb       NOT NULL, -- array of strings
	ngo_visible   boolean     NOT NULL,
	normalization jsonb       NOT NULL, -- object of strings
	begun_at      timestamptz NOT NULL,
	staged        bigint      NOT NULL DEFAULT 0, -- entries in the upload's batches
	entries       bigint      NOT NULL DEFAULT 0,
	committed_at  timestamptz,
	UNIQUE (owner, name, upload_id)
);
CREATE UNIQUE INDEX lists_current ON lists (owner, name) WHERE state = 1;
CREATE INDEX lists_visible ON lists (kind, key_id) WHERE state = 1;
CREATE INDEX lists_open ON lists (begun_at) WHERE state = 0;
CREATE INDEX lists_expiring ON lists (expires_at) WHERE state = 1;

-- The batches received for an upload, each kept as its entry count and the
-- SHA-256 of its refs (8 bytes, big-endian) and tokens, in order.
CREATE TABLE batches (
	list_id bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
	seq     bigint NOT NULL,
	entries bigint NOT NULL,
	digest  bytea  NOT NULL,
	PRIMARY KEY (list_id, seq)
);

-- The first 8 bytes of a token as a big-endian bigint: the key of the token
-- index. The SQL-standard body is bound at creation, whatever the
-- search_path, and is inlined into queries.
CREATE FUNCTION token_prefix(token bytea) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ('x' || encode(substring(token FROM 1 FOR 8), 'hex'))::bit(64)::bigint;

-- One row per token, 72 bytes with its tuple header: the columns are in
-- alignment order and there is no surrogate key. Rows are never updated.
CREATE TABLE tokens (
	ref     bigint  NOT NULL, -- the uint64 entry reference, bit for bit
	list_id integer NOT NULL, -- lists.id of the upload
	token   bytea   NOT NULL CHECK (octet_length(token) = 32)
) WITH (fillfactor = 100);
-- A block range index: uploads append their tokens, so a list version
-- lies in few ranges, at a few bytes per thousand tokens.
CREATE INDEX tokens_list ON tokens USING brin (list_id) WITH (autosummarize = on);
CREATE INDEX tokens_prefix ON tokens (token_prefix(token));
`,
	`
-- The decision log: canonical audit records (Merkle leaves), the Merkle
-- nodes their appends completed, the compact range state, and the signed
-- checkpoints.
CREATE TABLE log_records (
	idx    bigint PRIMARY KEY,
	record bytea  NOT NULL
);
CREATE TABLE log_nodes (
	level smallint NOT NULL,
	idx   bigint   NOT NULL,
	hash  bytea    NOT NULL,
	PRIMARY KEY (level, idx)
);
CREATE TABLE log_state (
	id     smallint PRIMARY KEY CHECK (id = 1),
	size   bigint   NOT NULL,
	hashes bytea    NOT NULL -- the compact range's hashes, concatenated
);
INSERT INTO log_state (id, size, hashes) VALUES (1, 0, '');
CREATE TABLE checkpoints (
	size       bigint PRIMARY KEY,
	checkpoint bytea  NOT NULL
);

-- Two-step disclosure requests, pinned to committed list versions. The
-- requests made from one match reference form a group; requested is what
-- the reference's answer showed the requester.
CREATE TABLE disclosure_requests (
	id                text        COLLATE "C" PRIMARY KEY,
	group_id          text        NOT NULL,
	requester         text        NOT NULL,
	requester_list    text        NOT NULL,
	requester_list_id bigint      NOT NULL,
	owner             text        NOT NULL,
	list              text        NOT NULL,
	list_id           bigint      NOT NULL,
	entry_refs        jsonb       NOT NULL, -- array, [] = every match
	entries           bigint      NOT NULL,
	requested         bigint      NOT NULL,
	reason            text        NOT NULL,
	purpose           text        NOT NULL,
	case_ref          text        NOT NULL,
	status            text        NOT NULL,
	created_at        timestamptz,
	answered_at       timestamptz,
	note              text        NOT NULL DEFAULT ''
);
CREATE INDEX disclosure_requests_owner ON disclosure_requests (owner, created_at);
CREATE INDEX disclosure_requests_requester ON disclosure_requests (requester, created_at);
CREATE INDEX disclosure_requests_grants ON disclosure_requests (requester_list_id) WHERE status = 'approved';
CREATE INDEX disclosure_requests_group ON disclosure_requests (group_id);
CREATE INDEX disclosure_requests_pending ON disclosure_requests (requester_list_id, list_id) WHERE status = 'pending';

-- Owner notices: full disclosures of an owner's list, and which action
-- disclosed them.
CREATE TABLE notices (
	id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner          text        NOT NULL,
	list           text        NOT NULL,
	action         text        NOT NULL,
	requester      text        NOT NULL,
	requester_list text        NOT NULL,
	entries        bigint      NOT NULL,
	purpose        text        NOT NULL,
	case_ref       text        NOT NULL,
	time           timestamptz,
	decision_id    text        NOT NULL
);
CREATE INDEX notices_owner ON notices (owner, id);

-- OPRF key ids the key server has reported: rank is the position in its
-- latest report (0 = newest), NULL once it no longer serves the key id.
-- Each keeps the public key it was first reported with.
CREATE TABLE key_epochs (
	key_id     text    COLLATE "C" PRIMARY KEY,
	rank       integer,
	public_key bytea
);

-- Entries each agency checked per UTC day (YYYY-MM-DD).
CREATE TABLE check_use (
	agency  text   NOT NULL,
	day     text   NOT NULL,
	entries bigint NOT NULL,
	PRIMARY KEY (agency, day)
);
`,
	`
-- Standing matches: every pair of entries with equal tokens in the
-- committed versions of two owners' lists of one kind and key id, in both
-- directions: entry ref of list version list_id matches entry cp_ref of
-- cp_list_id. Overlaps reads the pairs of a list version from the primary
-- key; the pairs whose counterparty is a given entry are the mirror images
-- of its own, found by the primary key too.
CREATE TABLE matches (
	list_id    bigint NOT NULL,
	ref        bigint NOT NULL,
	cp_list_id bigint NOT NULL,
	cp_ref     bigint NOT NULL,
	PRIMARY KEY (list_id, ref, cp_list_id, cp_ref)
);

-- What owners learn of the pairs of their entries (kind match or
-- retraction). Cursors are taken under the decision log's lock, so that
-- they become visible in their order (see the package documentation).
CREATE TABLE match_events (
	cursor     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind       text        NOT NULL,
	owner      text        NOT NULL,
	list_id    bigint      NOT NULL,
	ref        bigint      NOT NULL,
	cp_list_id bigint      NOT NULL,
	time       timestamptz
);
CREATE INDEX match_events_owner ON match_events (owner, cursor);
CREATE INDEX match_events_list ON match_events (list_id);
CREATE INDEX match_events_cp ON match_events (cp_list_id);

-- The pairs owners were alerted of: entry ref of list_id matched
-- cp_list_id.
CREATE TABLE alerted (
	list_id    bigint NOT NULL,
	ref        bigint NOT NULL,
	cp_list_id bigint NOT NULL,
	PRIMARY KEY (list_id, ref, cp_list_id)
);
CREATE INDEX alerted_cp ON alerted (cp_list_id);

-- Entries withdrawn by their owner: they match nothing.
CREATE TABLE retractions (
	id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	list_id bigint      NOT NULL,
	ref     bigint      NOT NULL,
	reason  text        NOT NULL,
	time    timestamptz,
	UNIQUE (list_id, ref)
);

-- The pairs of the lists committed before this version, found as a
-- commit finds them. They are not announced as events: they were there
-- before, for Overlaps to find.
INSERT INTO matches (list_id, ref, cp_list_id, cp_ref)
SELECT DISTINCT la.id, a.ref, lb.id, b.ref
FROM lists AS la
	JOIN tokens AS a ON a.list_id = la.id
	JOIN tokens AS b ON token_prefix(b.token) = token_prefix(a.token) AND b.token = a.token
	JOIN lists AS lb ON lb.id = b.list_id
WHERE la.state = 1 AND lb.state = 1 AND lb.owner <> la.owner AND lb.kind = la.kind AND lb.key_id = la.key_id;
`,
	`
-- Match sets: for each two list versions with pairs, the distinct refs of
-- list_id's entries that match an entry of cp_list_id, packed as a ref set
-- (see matchrow.AppendRefSet). They summarize matches, in the
-- transactions that change it, so that Overlaps reads a row per
-- counterparty version instead of one per pair. Filled from the pairs by a
-- backfill.
CREATE TABLE match_sets (
	list_id    bigint NOT NULL,
	cp_list_id bigint NOT NULL,
	refs       bytea  NOT NULL,
	PRIMARY KEY (list_id, cp_list_id)
);
`,
}

// backfills compute, from the data stored, the tables that migrations
// add as summaries of others: after the migration that brings the schema
// to the version of its key, in the same transaction.
var backfills = map[int]func(context.Context, matchrow.Tx) error{
	4: matchrow.FillSets,
}

// migrate creates the migrations table if needed and applies the migrations
// the database lacks, all in one transaction under an advisory lock, so
// that replicas opening the database at once apply them once.
func (s *Store) migrate(ctx context.Context) error {
	return s.update(ctx, "migrate", func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockMigrate, 0); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this program's %d", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if fill := backfills[i+1]; fill != nil {
				if err := fill(ctx, mtx{tx}); err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, i+1); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}
