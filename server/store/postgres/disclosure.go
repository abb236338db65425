package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

const requestColumns = `id, group_id, requester, requester_list, requester_list_id, owner, list, list_id, entry_refs, entries,
	requested, reason, purpose, case_ref, status, created_at, answered_at, note`

// requestOrder orders requests oldest first; a request without a creation
// time comes first, as in the sqlite store.
const requestOrder = ` ORDER BY created_at NULLS FIRST, id`

func scanRequest(row pgx.Row) (store.DisclosureRequest, error) {
	var r store.DisclosureRequest
	var refs string
	var created, answered pgtype.Timestamptz
	if err := row.Scan(&r.ID, &r.GroupID, &r.Requester, &r.RequesterList, &r.RequesterListID, &r.Owner, &r.List, &r.ListID, &refs, &r.Entries,
		&r.Requested, &r.Reason, &r.Purpose, &r.CaseRef, &r.Status, &created, &answered, &r.Note); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(refs), &r.EntryRefs); err != nil {
		return r, fmt.Errorf("request %s: entry refs: %w", r.ID, err)
	}
	r.CreatedAt, r.AnsweredAt = fromTimestamp(created), fromTimestamp(answered)
	return r, nil
}

// CreateDisclosureRequests implements store.Disclosures. It takes an
// advisory lock, so that replicas creating the same request at once store
// it once.
func (s *Store) CreateDisclosureRequests(ctx context.Context, reqs []store.DisclosureRequest, rec *audit.Record) error {
	return s.update(ctx, "create disclosure requests", func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockDisclosures, 0); err != nil {
			return err
		}
		for _, r := range reqs {
			if err := createRequest(ctx, tx, r); err != nil {
				return err
			}
		}
		return maybeAppend(ctx, tx, rec)
	})
}

// createRequest stores r as a pending request unless the same request is
// pending.
func createRequest(ctx context.Context, tx pgx.Tx, r store.DisclosureRequest) error {
	refs := r.EntryRefs
	if refs == nil {
		refs = []uint64{}
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	var group string
	err = tx.QueryRow(ctx, `SELECT group_id FROM disclosure_requests WHERE status = $1 AND requester_list_id = $2 AND list_id = $3
		AND entry_refs = $4::jsonb AND purpose = $5 AND case_ref = $6 LIMIT 1`,
		store.RequestPending, r.RequesterListID, r.ListID, string(b), r.Purpose, r.CaseRef).Scan(&group)
	switch {
	case err == nil:
		return fmt.Errorf("%w: request %s for the same match, purpose and case is still pending", store.ErrConflict, group)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO disclosure_requests (id, group_id, requester, requester_list, requester_list_id, owner, list, list_id,
		entry_refs, entries, requested, reason, purpose, case_ref, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		r.ID, r.GroupID, r.Requester, r.RequesterList, r.RequesterListID, r.Owner, r.List, r.ListID, string(b), int64(r.Entries),
		int64(r.Requested), r.Reason, r.Purpose, r.CaseRef, store.RequestPending, timestamp(r.CreatedAt)); err != nil {
		return fmt.Errorf("store request: %w", err)
	}
	return nil
}

// DisclosureRequests implements store.Disclosures.
func (s *Store) DisclosureRequests(ctx context.Context, owner, requester string, all bool) ([]store.DisclosureRequest, error) {
	if (owner == "") == (requester == "") {
		return nil, fmt.Errorf("disclosure requests: %w: exactly one of owner and requester", store.ErrInvalid)
	}
	col, who := "owner", owner
	if requester != "" {
		col, who = "requester", requester
	}
	q := `SELECT ` + requestColumns + ` FROM disclosure_requests WHERE ` + col + ` = $1`
	if !all {
		q += ` AND status = '` + store.RequestPending + `'`
	}
	return viewAll(ctx, s, "disclosure requests", scanRequest, q+requestOrder, who)
}

// AnswerDisclosureRequest implements store.Disclosures. It locks the
// request's row, so that of two replicas answering at once one answers and
// the other finds the request answered.
func (s *Store) AnswerDisclosureRequest(ctx context.Context, id, owner string, approve bool, note string, at time.Time, rec *audit.Record) (store.DisclosureRequest, error) {
	var r store.DisclosureRequest
	err := s.update(ctx, "answer disclosure request", func(tx pgx.Tx) error {
		var err error
		r, err = scanRequest(tx.QueryRow(ctx, `SELECT `+requestColumns+` FROM disclosure_requests WHERE id = $1 AND owner = $2 FOR UPDATE`, id, owner))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: disclosure request %s", store.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if r.Status != store.RequestPending {
			return fmt.Errorf("%w: disclosure request %s is already %s", store.ErrConflict, id, r.Status)
		}
		r.Status, r.AnsweredAt, r.Note = store.RequestRefused, fromTimestamp(timestamp(at)), note
		if approve {
			r.Status = store.RequestApproved
		}
		if _, err := tx.Exec(ctx, `UPDATE disclosure_requests SET status = $1, answered_at = $2, note = $3 WHERE id = $4`,
			r.Status, timestamp(at), note, id); err != nil {
			return err
		}
		return maybeAppend(ctx, tx, rec)
	})
	return r, err
}

// Grants implements store.Disclosures.
func (s *Store) Grants(ctx context.Context, requesterListID int64) ([]store.DisclosureRequest, error) {
	return viewAll(ctx, s, "grants", scanRequest, `SELECT `+requestColumns+` FROM disclosure_requests
		WHERE requester_list_id = $1 AND status = '`+store.RequestApproved+`'`+requestOrder, requesterListID)
}

// Notices implements store.Disclosures.
func (s *Store) Notices(ctx context.Context, owner string) ([]store.Notice, error) {
	return viewAll(ctx, s, "notices", scanNotice, `SELECT owner, list, action, requester, requester_list, entries, purpose, case_ref, time, decision_id
		FROM notices WHERE owner = $1 ORDER BY id`, owner)
}

func scanNotice(row pgx.Row) (store.Notice, error) {
	var n store.Notice
	var t pgtype.Timestamptz
	if err := row.Scan(&n.Owner, &n.List, &n.Action, &n.Requester, &n.RequesterList, &n.Entries, &n.Purpose, &n.CaseRef, &t, &n.DecisionID); err != nil {
		return n, err
	}
	n.Time = fromTimestamp(t)
	return n, nil
}
