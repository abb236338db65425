package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// Alert kinds.
const (
	// AlertMatch is a new match of one of the agency's entries, at level
	// full or flag.
	AlertMatch = "match"
	// AlertCount is how many of the agency's entries newly matched a class
	// of counterparty disclosed at level count.
	AlertCount = "count"
	// AlertRetraction says that a counterparty entry the agency was
	// alerted of was retracted: the match no longer stands.
	AlertRetraction = "retraction"
)

// Alert is one alert of a watch, as `agency watch --format json` prints it.
type Alert struct {
	Event          string        `json:"event"`
	List           string        `json:"list"`
	Line           int           `json:"line,omitempty"`
	Value          string        `json:"value,omitempty"`
	EntryRef       uint64        `json:"entry_ref"`
	Level          string        `json:"level,omitempty"`
	Counterparty   *Counterparty `json:"counterparty,omitempty"`
	LiaisonContact string        `json:"liaison_contact,omitempty"`
	MatchRef       string        `json:"match_ref,omitempty"`
	Class          string        `json:"class,omitempty"`
	Matches        uint64        `json:"matches,omitempty"`
	DecisionID     string        `json:"decision_id,omitempty"`
	// Cursor is the position of the delivery this alert came in.
	Cursor uint64 `json:"cursor"`
}

// WatchOptions say which of the agency's lists to watch (all when List is
// empty) and why.
type WatchOptions struct {
	List  string
	Query Query
	// Once stops the watch when it has delivered every alert there is,
	// instead of waiting for more.
	Once bool
}

// errCaughtUp ends a watch with Once.
var errCaughtUp = errors.New("client: caught up")

// watchRetry is how long Watch waits before reconnecting to the hub.
const watchRetry = time.Second

// Watch calls fn with every alert about the agency's lists, in order, until
// ctx is done. It starts after the last delivery a watch of the same lists
// handled on this machine (the cursor is kept in the state directory), and
// reconnects when the hub goes away or restarts, so that no alert is lost
// or delivered twice. An error from fn stops it; the delivery fn failed on
// is delivered again next time. With o.Once it returns once it has caught
// up.
func (c *Client) Watch(ctx context.Context, o WatchOptions, fn func(Alert) error) error {
	if err := c.needHub(); err != nil {
		return err
	}
	key := o.List
	if key == "" {
		key = "*"
	}
	cursor, err := c.state.watchCursor(key)
	if err != nil {
		return err
	}
	for {
		err := c.watchFrom(ctx, o, key, &cursor, fn)
		if ctx.Err() != nil || errors.Is(err, errCaughtUp) {
			return nil
		}
		if status.Code(err) != codes.Unavailable {
			return err
		}
		fmt.Fprintf(c.cfg.Progress, "watch: the hub is unavailable (%v); reconnecting from cursor %d\n", status.Convert(err).Message(), cursor)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRetry):
		}
	}
}

// watchFrom runs one Watch stream from *cursor, advancing it past each
// delivery handled.
func (c *Client) watchFrom(ctx context.Context, o WatchOptions, key string, cursor *uint64, fn func(Alert) error) error {
	stream, err := c.hub.Watch(ctx, &veilmatchv1.WatchRequest{List: o.List, Purpose: o.Query.Purpose, CaseRef: o.Query.CaseRef, After: *cursor})
	if err != nil {
		return err
	}
	rows := rowsCache{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.GetCaughtUp() && o.Once {
			return errCaughtUp
		}
		for _, a := range c.alerts(resp, rows) {
			if err := fn(a); err != nil {
				return err
			}
		}
		*cursor = resp.GetCursor()
		if err := c.state.setWatchCursor(key, *cursor); err != nil {
			return err
		}
	}
}

// rowsCache holds, for one watch stream, the rows of the list versions
// its deliveries were about, by list and upload id: a version's rows never
// change, and a stream may bring many deliveries about one version.
type rowsCache map[[2]string]rowTable

// alerts turns one delivery into alerts, each mapped to the agency's own
// row where this machine holds the rows of that list version.
func (c *Client) alerts(resp *veilmatchv1.WatchResponse, cache rowsCache) []Alert {
	if resp.GetUploadId() == "" {
		return nil
	}
	key := [2]string{resp.GetList(), resp.GetUploadId()}
	entries, ok := cache[key]
	if !ok {
		var err error
		if entries, err = c.rows(resp.GetList(), resp.GetUploadId()); err != nil {
			fmt.Fprintf(c.cfg.Progress, "watch: %v; its alerts show entry references only\n", err)
			entries = entrySlice(nil)
		}
		cache[key] = entries
	}
	r := result(resp.GetList(), resp.GetDecisionId(), resp.GetMatches(), resp.GetCounts(), entries)
	base := Alert{List: resp.GetList(), DecisionID: resp.GetDecisionId(), Cursor: resp.GetCursor()}
	var out []Alert
	for _, m := range r.Matches {
		a := base
		a.Event, a.Line, a.Value, a.EntryRef, a.Level = AlertMatch, m.Line, m.Value, m.EntryRef, m.Level
		a.Counterparty, a.LiaisonContact, a.MatchRef = m.Counterparty, m.LiaisonContact, m.MatchRef
		out = append(out, a)
	}
	for _, n := range r.Counts {
		a := base
		a.Event, a.Level, a.Class, a.Matches, a.MatchRef = AlertCount, "count", n.Class, n.Matches, n.MatchRef
		out = append(out, a)
	}
	for _, ref := range resp.GetRetracted() {
		a := base
		a.Event, a.EntryRef = AlertRetraction, ref
		if row, ok := entries.entry(ref); ok {
			a.Line, a.Value = row.Line, row.shown()
		}
		out = append(out, a)
	}
	return out
}

// watchCursorsPath is the file that holds, per watched list ("*": all),
// the cursor after the last delivery handled.
func (s *stateDir) watchCursorsPath() string { return filepath.Join(s.dir, "watch-cursors.json") }

func (s *stateDir) watchCursor(key string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cursors := map[string]uint64{}
	if err := readJSON(s.watchCursorsPath(), &cursors); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("read watch cursors: %w", err)
	}
	return cursors[key], nil
}

func (s *stateDir) setWatchCursor(key string, cursor uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cursors := map[string]uint64{}
	if err := readJSON(s.watchCursorsPath(), &cursors); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read watch cursors: %w", err)
	}
	cursors[key] = cursor
	if err := writeJSON(s.watchCursorsPath(), cursors); err != nil {
		return fmt.Errorf("save watch cursor: %w", err)
	}
	return nil
}
