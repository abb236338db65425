package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// Entry names one entry of one of the agency's lists by what the agency
// knows of it: its line in the file published, or its canonical value.
type Entry struct {
	List  string
	Line  int
	Value string
}

// Retraction is an entry the agency withdrew.
type Retraction struct {
	List     string    `json:"list"`
	Line     int       `json:"line,omitempty"`
	Value    string    `json:"value,omitempty"`
	EntryRef uint64    `json:"entry_ref"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
	// DecisionID is the decision that recorded it (from Retract only).
	DecisionID string `json:"decision_id,omitempty"`
}

// ErrNoEntry reports a line or value that is not an entry of the list's
// current version here.
var ErrNoEntry = errors.New("client: no such entry")

// Retract withdraws an entry of one of the agency's lists, with a reason:
// it stops matching at once, and every agency that was alerted of a match
// against it is told.
func (c *Client) Retract(ctx context.Context, e Entry, reason string) (Retraction, error) {
	ref, row, err := c.entryRef(ctx, e)
	if err != nil {
		return Retraction{}, err
	}
	resp, err := c.hub.RetractEntry(ctx, &veilmatchv1.RetractEntryRequest{List: e.List, EntryRef: ref, Reason: reason})
	if err != nil {
		return Retraction{}, fmt.Errorf("retract line %d of list %s: %w", row.Line, e.List, err)
	}
	r := resp.GetRetraction()
	return Retraction{List: e.List, Line: row.Line, Value: row.shown(), EntryRef: ref, Reason: r.GetReason(), Time: r.GetTime().AsTime(),
		DecisionID: resp.GetDecisionId()}, nil
}

// UndoRetraction undoes the retraction of an entry: it matches again.
func (c *Client) UndoRetraction(ctx context.Context, e Entry) (string, error) {
	ref, row, err := c.entryRef(ctx, e)
	if err != nil {
		return "", err
	}
	resp, err := c.hub.UndoRetraction(ctx, &veilmatchv1.UndoRetractionRequest{List: e.List, EntryRef: ref})
	if err != nil {
		return "", fmt.Errorf("undo the retraction of line %d of list %s: %w", row.Line, e.List, err)
	}
	return resp.GetDecisionId(), nil
}

// Retractions lists the agency's retractions, with their rows where this
// machine holds them.
func (c *Client) Retractions(ctx context.Context) ([]Retraction, error) {
	if err := c.needHub(); err != nil {
		return nil, err
	}
	resp, err := c.hub.ListRetractions(ctx, &veilmatchv1.ListRetractionsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list retractions: %w", err)
	}
	out := []Retraction{}
	for _, r := range resp.GetRetractions() {
		rt := Retraction{List: r.GetList(), EntryRef: r.GetEntryRef(), Reason: r.GetReason(), Time: r.GetTime().AsTime()}
		if entries, err := c.rows(r.GetList(), r.GetUploadId()); err == nil {
			if row, ok := entries.entry(r.GetEntryRef()); ok {
				rt.Line, rt.Value = row.Line, row.shown()
			}
		}
		out = append(out, rt)
	}
	return out, nil
}

// entryRef finds the entry reference of e in the list's version the hub
// holds, which this machine must have published.
func (c *Client) entryRef(ctx context.Context, e Entry) (uint64, localEntry, error) {
	if err := c.needHub(); err != nil {
		return 0, localEntry{}, err
	}
	info, err := c.list(ctx, e.List)
	if err != nil {
		return 0, localEntry{}, err
	}
	if info == nil {
		return 0, localEntry{}, fmt.Errorf("%w: list %s is not at the hub", ErrNoEntry, e.List)
	}
	entries, err := c.rows(e.List, info.GetUploadId())
	if err != nil {
		return 0, localEntry{}, err
	}
	for ref := range uint64(entries.len()) {
		row, _ := entries.entry(ref)
		if e.Line != 0 && row.Line == e.Line || e.Line == 0 && e.Value != "" && (row.Value == e.Value || row.Label == e.Value) {
			return ref, row, nil
		}
	}
	what := fmt.Sprintf("line %d", e.Line)
	if e.Line == 0 {
		what = fmt.Sprintf("value %q (values are canonical, as overlaps prints them)", e.Value)
	}
	return 0, localEntry{}, fmt.Errorf("%w: %s is not an entry of list %s as published", ErrNoEntry, what, e.List)
}
