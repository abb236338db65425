package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
)

const requestColumns = `id, group_id, requester, requester_list, requester_list_id, owner, list, list_id, entry_refs, entries,
	requested, reason, purpose, case_ref, status, created_at, answered_at, note`

func scanRequest(row interface{ Scan(...any) error }) (store.DisclosureRequest, error) {
	var r store.DisclosureRequest
	var refs string
	var entries, requested, created, answered int64
	if err := row.Scan(&r.ID, &r.GroupID, &r.Requester, &r.RequesterList, &r.RequesterListID, &r.Owner, &r.List, &r.ListID, &refs, &entries,
		&requested, &r.Reason, &r.Purpose, &r.CaseRef, &r.Status, &created, &answered, &r.Note); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(refs), &r.EntryRefs); err != nil {
		return r, fmt.Errorf("request %s: entry refs: %w", r.ID, err)
	}
	r.Entries, r.Requested = uint64(entries), uint64(requested)
	r.CreatedAt = listrow.FromMicros(created)
	if answered != 0 {
		r.AnsweredAt = listrow.FromMicros(answered)
	}
	return r, nil
}

// CreateDisclosureRequests implements store.Disclosures.
func (s *Store) CreateDisclosureRequests(ctx context.Context, reqs []store.DisclosureRequest, rec *audit.Record) error {
	return s.update(ctx, "create disclosure requests", func(tx *sql.Tx) error {
		for _, r := range reqs {
			refs := r.EntryRefs
			if refs == nil {
				refs = []uint64{}
			}
			b, err := json.Marshal(refs)
			if err != nil {
				return err
			}
			var group string
			err = tx.QueryRowContext(ctx, `SELECT group_id FROM disclosure_requests WHERE status = ? AND requester_list_id = ? AND list_id = ?
				AND entry_refs = ? AND purpose = ? AND case_ref = ? LIMIT 1`,
				store.RequestPending, r.RequesterListID, r.ListID, string(b), r.Purpose, r.CaseRef).Scan(&group)
			switch {
			case err == nil:
				return fmt.Errorf("%w: request %s for the same match, purpose and case is still pending", store.ErrConflict, group)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO disclosure_requests (id, group_id, requester, requester_list, requester_list_id, owner, list, list_id,
				entry_refs, entries, requested, reason, purpose, case_ref, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.ID, r.GroupID, r.Requester, r.RequesterList, r.RequesterListID, r.Owner, r.List, r.ListID, string(b), int64(r.Entries),
				int64(r.Requested), r.Reason, r.Purpose, r.CaseRef, store.RequestPending, listrow.Micros(r.CreatedAt)); err != nil {
				return fmt.Errorf("store request: %w", err)
			}
		}
		return maybeAppend(ctx, tx, rec)
	})
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
	q := `SELECT ` + requestColumns + ` FROM disclosure_requests WHERE ` + col + ` = ?`
	if !all {
		q += ` AND status = '` + store.RequestPending + `'`
	}
	q += ` ORDER BY created_at, id`
	return viewAll(ctx, s, "disclosure requests", scanRequest, q, who)
}

// AnswerDisclosureRequest implements store.Disclosures.
func (s *Store) AnswerDisclosureRequest(ctx context.Context, id, owner string, approve bool, note string, at time.Time, rec *audit.Record) (store.DisclosureRequest, error) {
	var r store.DisclosureRequest
	err := s.update(ctx, "answer disclosure request", func(tx *sql.Tx) error {
		var err error
		r, err = scanRequest(tx.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM disclosure_requests WHERE id = ? AND owner = ?`, id, owner))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: disclosure request %s", store.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if r.Status != store.RequestPending {
			return fmt.Errorf("%w: disclosure request %s is already %s", store.ErrConflict, id, r.Status)
		}
		r.Status, r.AnsweredAt, r.Note = store.RequestRefused, at.UTC().Truncate(time.Microsecond), note
		if approve {
			r.Status = store.RequestApproved
		}
		if _, err := tx.ExecContext(ctx, `UPDATE disclosure_requests SET status = ?, answered_at = ?, note = ? WHERE id = ?`,
			r.Status, listrow.Micros(at), note, id); err != nil {
			return err
		}
		return maybeAppend(ctx, tx, rec)
	})
	return r, err
}

// Grants implements store.Disclosures.
func (s *Store) Grants(ctx context.Context, requesterListID int64) ([]store.DisclosureRequest, error) {
	return viewAll(ctx, s, "grants", scanRequest, `SELECT `+requestColumns+` FROM disclosure_requests
		WHERE requester_list_id = ? AND status = '`+store.RequestApproved+`' ORDER BY created_at, id`, requesterListID)
}

// Notices implements store.Disclosures.
func (s *Store) Notices(ctx context.Context, owner string) ([]store.Notice, error) {
	return viewAll(ctx, s, "notices", scanNotice, `SELECT owner, list, action, requester, requester_list, entries, purpose, case_ref, time, decision_id
		FROM notices WHERE owner = ? ORDER BY id`, owner)
}

func scanNotice(row interface{ Scan(...any) error }) (store.Notice, error) {
	var n store.Notice
	var entries, t int64
	if err := row.Scan(&n.Owner, &n.List, &n.Action, &n.Requester, &n.RequesterList, &entries, &n.Purpose, &n.CaseRef, &t, &n.DecisionID); err != nil {
		return n, err
	}
	n.Entries, n.Time = uint64(entries), listrow.FromMicros(t)
	return n, nil
}
