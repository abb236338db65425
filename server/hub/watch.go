package hub

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// Alerts. The store keeps standing matches and appends an event for each
// side when a list version commits (or a retraction reaches an owner who
// was alerted). Watch reads the caller's events from its cursor, in cursor
// order, in runs of consecutive events about one list version, and
// delivers each run at the level the policy grants now, through decide —
// the same path as Overlaps, so victim safety, disclosure grants and owner
// notices hold alike. A run's delivery and the pairs it disclosed are
// recorded in one transaction. The cursor a response carries covers every
// event before it, so a watcher that resumes from the last cursor it
// received loses and repeats nothing.

// Watch defaults.
const (
	// DefaultWatchPoll is how often Watch looks for new events when it has
	// delivered all there were and this hub committed nothing since:
	// events come from any hub replica, through the store.
	DefaultWatchPoll = time.Second
	// watchBatch is how many events Watch reads at once.
	watchBatch = 1000
)

// Watch implements veilmatchv1.HubServiceServer.
func (s *Service) Watch(req *veilmatchv1.WatchRequest, stream veilmatchv1.HubService_WatchServer) error {
	ctx := stream.Context()
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return err
	}
	list := req.GetList()
	if list != "" {
		if list, err = resolveList(id, "list", list); err != nil {
			return err
		}
	}
	purpose, caseRef, err := query(s.policy.Vocabulary(), a, req.GetPurpose(), req.GetCaseRef())
	if err != nil {
		return err
	}
	if purpose == "" {
		return invalid("purpose: alerts are matching and need a purpose; role %s may state: %s", a.Role, strings.Join(s.policy.Vocabulary().Purposes(a.Role), ", "))
	}
	w := watcher{s: s, owner: id, agency: a, purpose: purpose, caseRef: caseRef, list: list, stream: stream}
	if err := w.preflight(ctx); err != nil {
		return err
	}
	return w.run(ctx, req.GetAfter())
}

// preflight asks the policy, as each delivery will, with the watched list
// (or the first of the caller's lists), so that a watch the policy refuses
// is refused now, on the record, and not at its first alert.
func (w watcher) preflight(ctx context.Context) error {
	lists, err := w.s.store.Lists(ctx, w.owner.ID)
	if err != nil {
		return storeError(ctx, "list lists", err)
	}
	for _, l := range lists {
		if w.list == "" || l.Name == w.list {
			pl := policyList(l)
			_, err := w.s.authorizeRecorded(ctx, policy.Request{Action: audit.ActionAlert, Time: w.s.now(), Purpose: w.purpose,
				CaseRef: w.caseRef, Requester: w.agency, List: &pl})
			return err
		}
	}
	if w.list != "" {
		return status.Errorf(codes.NotFound, "list %q is not at the hub; publish it before watching it", w.list)
	}
	return status.Errorf(codes.FailedPrecondition, "%s has no list at the hub; publish one before watching", w.owner.ID)
}

// watcher is one Watch stream.
type watcher struct {
	s                *Service
	owner            mtls.Identity
	agency           policy.Agency
	purpose, caseRef string
	list             string
	stream           veilmatchv1.HubService_WatchServer
}

// run delivers events from after on until the stream ends.
func (w watcher) run(ctx context.Context, after uint64) error {
	poll := time.NewTicker(w.s.watchPoll)
	defer poll.Stop()
	caughtUp := false // told the watcher it has everything
	for {
		changed := w.s.changes.wait()
		events, err := w.s.store.MatchEvents(ctx, w.owner.ID, w.list, after, watchBatch)
		if err != nil {
			return storeError(ctx, "read alerts", err)
		}
		full := len(events) == watchBatch
		for len(events) > 0 {
			n := runLength(events)
			resp, err := w.deliver(ctx, events[:n])
			if err != nil {
				return err
			}
			if err := w.stream.Send(resp); err != nil {
				return err
			}
			after, events, caughtUp = resp.GetCursor(), events[n:], false
		}
		if full {
			continue // more are waiting
		}
		if !caughtUp {
			if err := w.stream.Send(&veilmatchv1.WatchResponse{Cursor: after, CaughtUp: true}); err != nil {
				return err
			}
			caughtUp = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.s.changes.stopping():
			return status.Error(codes.Unavailable, "the hub is shutting down: reconnect and resume from the last cursor")
		case <-poll.C:
		case <-changed:
		}
	}
}

// changes wakes the watchers of this hub when it commits something that
// may append events, so that alerts of its own commits go out at once;
// other replicas' commits are found by polling.
type changes struct {
	mu sync.Mutex
	ch chan struct{} // closed, and replaced, at each commit
	// stop is closed when the hub shuts down, so that watchers end and
	// do not hold up the graceful stop.
	stop     chan struct{}
	stopOnce sync.Once
}

func newChanges() *changes {
	return &changes{ch: make(chan struct{}), stop: make(chan struct{})}
}

// stopping returns a channel closed when the hub shuts down.
func (c *changes) stopping() <-chan struct{} { return c.stop }

// shutdown ends every watch.
func (c *changes) shutdown() { c.stopOnce.Do(func() { close(c.stop) }) }

// wait returns a channel closed at the next commit.
func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// committed wakes everyone waiting.
func (c *changes) committed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}

// runLength is how many events from the first are about the same list
// version.
func runLength(events []store.MatchEvent) int {
	n := 1
	for n < len(events) && events[n].ListID == events[0].ListID {
		n++
	}
	return n
}

// deliver answers one run of events about one list version: its new
// matches at the levels the policy grants now, and its retracted entries.
func (w watcher) deliver(ctx context.Context, run []store.MatchEvent) (*veilmatchv1.WatchResponse, error) {
	resp := &veilmatchv1.WatchResponse{Cursor: run[len(run)-1].Cursor, List: run[0].List}
	own, err := w.s.store.GetList(ctx, w.owner.ID, run[0].List)
	if errors.Is(err, store.ErrNotFound) || err == nil && own.ID != run[0].ListID {
		return resp, nil // republished or erased since: nothing to tell about that version
	}
	if err != nil {
		return nil, storeError(ctx, "get list", err)
	}
	resp.UploadId = own.UploadID
	var pairs []store.Alerted
	seen := map[store.Alerted]bool{} // a match found again after an undone retraction has two events
	for _, e := range run {
		switch e.Kind {
		case store.EventMatch:
			p := store.Alerted{ListID: e.ListID, Ref: e.Ref, CounterpartyListID: e.CounterpartyListID}
			if !seen[p] {
				seen[p] = true
				pairs = append(pairs, p)
			}
		case store.EventRetraction:
			resp.Retracted = append(resp.Retracted, e.Ref)
		}
	}
	pl := policyList(own)
	r := policy.Request{Action: audit.ActionAlert, Time: w.s.now(), Purpose: w.purpose, CaseRef: w.caseRef, Requester: w.agency, List: &pl}
	az, err := w.s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	ans, err := w.s.decide(ctx, r, az, &own, w.s.read(ctx, r, own.Kind, own.KeyID, &own, func(fn func(uint64, int64) error) error {
		for _, p := range pairs {
			if err := fn(p.Ref, p.CounterpartyListID); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		return nil, err
	}
	resp.Matches, resp.Counts = ans.matches, ans.counts
	if len(ans.perClass) == 0 && len(resp.Retracted) == 0 {
		return resp, nil // the policy disclosed nothing: no decision to record
	}
	rec := w.s.decisionRecord(ctx, r, az, ans)
	if n := len(resp.Retracted); n > 0 {
		rec.Details = map[string]string{"retracted": strconv.Itoa(n)}
	}
	if _, err := w.s.store.AppendAlertDecision(ctx, rec, ans.notices, ans.disclosed(own.ID)); err != nil {
		return nil, rpc.Unavailable(ctx, "decision log", err)
	}
	w.s.metrics.Decided(rec.Action, rec.Result)
	w.s.answered(ctx, r, rec.DecisionID, ans)
	resp.DecisionId = rec.DecisionID
	return resp, nil
}
