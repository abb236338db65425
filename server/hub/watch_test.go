package hub_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// alertWait is how long a test waits for an alert it expects.
const alertWait = 15 * time.Second

// watching is a client.Watch running in the background.
type watching struct {
	alerts chan client.Alert
	stop   context.CancelFunc
	done   chan struct{} // closed when the watch has returned, with err set
	err    error
}

// watch starts c watching its lists (or one) for q.
func watch(t *testing.T, c *client.Client, list string, q client.Query) *watching {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watching{alerts: make(chan client.Alert, 100), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = c.Watch(ctx, client.WatchOptions{List: list, Query: q}, func(a client.Alert) error {
			w.alerts <- a
			return nil
		})
	}()
	t.Cleanup(w.end)
	return w
}

// end stops the watch and waits for it.
func (w *watching) end() {
	w.stop()
	<-w.done
}

// next returns the next alert, failing the test if none comes.
func (w *watching) next(t *testing.T) client.Alert {
	t.Helper()
	select {
	case a := <-w.alerts:
		return a
	case <-w.done:
		t.Fatalf("the watch ended: %v", w.err)
	case <-time.After(alertWait):
		t.Fatal("no alert")
	}
	return client.Alert{}
}

// take returns the next n alerts.
func (w *watching) take(t *testing.T, n int) []client.Alert {
	t.Helper()
	var out []client.Alert
	for range n {
		out = append(out, w.next(t))
	}
	return out
}

// sentinel publishes a list of one phone that matches one of the watcher's,
// and returns when the watcher receives its alert: every alert due before
// it has been delivered by then, so what came before is all there is.
func sentinel(t *testing.T, by *client.Client, list, phone string, w *watching) []client.Alert {
	t.Helper()
	publish(t, by, list, "GB", "phone\n"+phone+"\n")
	var before []client.Alert
	for {
		a := w.next(t)
		if a.Event == client.AlertMatch && a.Counterparty != nil && a.Counterparty.List == list {
			return before
		}
		before = append(before, a)
	}
}

// once runs a watch of all of c's lists for an investigation until it has
// caught up, and returns what it delivered.
func once(t *testing.T, c *client.Client) []client.Alert {
	t.Helper()
	var got []client.Alert
	err := c.Watch(context.Background(), client.WatchOptions{Query: investigation, Once: true}, func(a client.Alert) error {
		got = append(got, a)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// matchView is what an alert and an overlaps answer have in common for one
// match: everything but the match reference, which is sealed per answer.
type matchView struct {
	Line         int
	Value, Level string
	Counterparty client.Counterparty
	Liaison      string
}

func alertViews(t *testing.T, as []client.Alert) []matchView {
	t.Helper()
	var out []matchView
	for _, a := range as {
		if a.Event != client.AlertMatch {
			t.Fatalf("alert %+v is not a match", a)
		}
		out = append(out, view(client.Match{Line: a.Line, Value: a.Value, Level: a.Level, Counterparty: a.Counterparty, LiaisonContact: a.LiaisonContact}))
	}
	return sortViews(out)
}

func overlapViews(t *testing.T, c *client.Client, list string, q client.Query) []matchView {
	t.Helper()
	res, err := c.Overlaps(context.Background(), list, q)
	if err != nil {
		t.Fatal(err)
	}
	var out []matchView
	for _, m := range res.Matches {
		out = append(out, view(m))
	}
	return sortViews(out)
}

func view(m client.Match) matchView {
	v := matchView{Line: m.Line, Value: m.Value, Level: m.Level, Liaison: m.LiaisonContact}
	if m.Counterparty != nil {
		v.Counterparty = *m.Counterparty
	}
	return v
}

func sortViews(v []matchView) []matchView {
	sort.Slice(v, func(i, j int) bool {
		if v[i].Line != v[j].Line {
			return v[i].Line < v[j].Line
		}
		return v[i].Counterparty.List < v[j].Counterparty.List
	})
	return v
}

// TestWatchAlertsBothSides: agencies watching before a counterparty
// publishes are both alerted of the new matches, with exactly what
// overlaps shows each of them, at the same levels.
func TestWatchAlertsBothSides(t *testing.T) {
	e := start(t)
	gb, us := e.client(t, "police-gb"), e.client(t, "police-us")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900456\n07700 900999\n")
	gbw := watch(t, gb, "", investigation)
	// The US list is published after the GB watch started, and watched
	// after it was published: both sides learn of the matches.
	publish(t, us, "suspects", "US", "phone\n+44 7700 900456\n+1 415 555 0100\n+44 7700 900123\n")
	usw := watch(t, us, "suspects", investigation)

	gbAlerts, usAlerts := gbw.take(t, 2), usw.take(t, 2)
	if got, want := alertViews(t, gbAlerts), overlapViews(t, gb, "suspects", investigation); mustJSON(t, got) != mustJSON(t, want) {
		t.Fatalf("police-gb alerts:\n%s\noverlaps:\n%s", mustJSON(t, got), mustJSON(t, want))
	}
	if got, want := alertViews(t, usAlerts), overlapViews(t, us, "suspects", investigation); mustJSON(t, got) != mustJSON(t, want) {
		t.Fatalf("police-us alerts:\n%s\noverlaps:\n%s", mustJSON(t, got), mustJSON(t, want))
	}
	a := gbAlerts[0]
	if a.Level != "full" || a.Counterparty == nil || a.Counterparty.Agency != "police-us" || a.DecisionID == "" {
		t.Fatalf("alert = %+v", a)
	}
	// Nothing else is pending: the next alert is the sentinel's.
	if extra := sentinel(t, us, "sentinel", "+44 7700 900999", gbw); len(extra) != 0 {
		t.Fatalf("alerts beyond the matches: %+v", extra)
	}

	// Published again with one more row, the list alerts that row's
	// matches only, on both sides: the others were told already.
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900456\n07700 900999\n+1 415 555 0100\n")
	if a := gbw.next(t); a.Value != "+14155550100" || a.Line != 5 {
		t.Fatalf("police-gb alert after its republish = %+v; want line 5 only", a)
	}
	if a := usw.next(t); a.Value != "+14155550100" || a.Counterparty.Agency != "police-gb" {
		t.Fatalf("police-us alert after police-gb's republish = %+v", a)
	}
	if extra := sentinel(t, us, "sentinel2", "+44 7700 900456", gbw); len(extra) != 0 {
		t.Fatalf("the republish alerted police-gb again of old matches: %+v", extra)
	}

	// A scheduled watch continues from the same cursor and stops when it
	// has caught up: nothing again, then only what is new.
	gbw.end()
	if got := once(t, gb); len(got) != 0 {
		t.Fatalf("a watch started again delivers again: %+v", got)
	}
	publish(t, us, "late", "GB", "phone\n07700 900456\n")
	if got := once(t, gb); len(got) != 1 || got[0].Counterparty.List != "late" {
		t.Fatalf("once = %+v", got)
	}
}

// TestWatchNeedsPurpose: alerts are matching, so a watch states why.
func TestWatchNeedsPurpose(t *testing.T) {
	e := start(t)
	gb := e.client(t, "police-gb")
	none := func(client.Alert) error { return nil }
	err := gb.Watch(context.Background(), client.WatchOptions{Query: investigation}, none)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "publish one before watching") {
		t.Fatalf("watch with no list: %v", err)
	}
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n")
	err = gb.Watch(context.Background(), client.WatchOptions{List: "other", Query: investigation}, none)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("watch of a list not at the hub: %v", err)
	}
	err = gb.Watch(context.Background(), client.WatchOptions{}, none)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "purpose") {
		t.Fatalf("watch without a purpose: %v", err)
	}
	err = gb.Watch(context.Background(), client.WatchOptions{Query: client.Query{Purpose: "investigation"}}, none)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "case reference") {
		t.Fatalf("watch without a case reference: %v", err)
	}
	stream, err := e.hubClient(t, "auditor").Watch(context.Background(), &veilmatchv1.WatchRequest{Purpose: "audit"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("auditor watch: %v", err)
	}
}

// TestWatchAcrossHubRestart: a watcher keeps its place across a hub
// restart — graceful, or killed with SIGKILL — and its own restarts: every
// alert arrives, once.
func TestWatchAcrossHubRestart(t *testing.T) {
	for _, how := range []string{"graceful", "kill"} {
		t.Run(how, func(t *testing.T) { testWatchAcrossHubRestart(t, how == "kill") })
	}
}

func testWatchAcrossHubRestart(t *testing.T, kill bool) {
	ks := servertest.KeyServer(t, keyserver.Config{})
	dir := t.TempDir()
	pol := servertest.Policy(t)
	serve := func(listen string) (addr string, stop func()) {
		if kill {
			child, addr := startChildAt(t, dir, listen)
			return addr, func() {
				if err := child.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				child.Wait()
			}
		}
		h, err := hub.New(context.Background(), hub.Config{Listen: listen, TLS: servertest.ServerTLS(t, "hub"), DataDir: dir, Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.Serve(ctx) }()
		return h.Addr().String(), func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("hub: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the hub did not stop with a watch open")
			}
		}
	}
	addr, stop := serve("127.0.0.1:0")
	mk := func(agency, state string) *client.Client {
		return servertest.Client(t, client.Config{Agency: agency, Hub: addr, KeyServer: ks.Addr().String(), StateDir: state})
	}
	gbState := t.TempDir()
	gb, us := mk("police-gb", gbState), mk("police-us", "")
	publish(t, gb, "suspects", "GB", "phone\n07700 900001\n07700 900002\n07700 900003\n07700 900004\n")
	w := watch(t, gb, "suspects", investigation)
	publish(t, us, "one", "GB", "phone\n07700 900001\n")
	if a := w.next(t); a.Value != "+447700900001" {
		t.Fatalf("first alert = %+v", a)
	}

	stop()
	addr2, stop := serve(addr)
	defer stop()
	if addr2 != addr {
		t.Fatalf("the hub came back on %s, not %s", addr2, addr)
	}
	// Published while the watcher is still reconnecting.
	publish(t, us, "two", "GB", "phone\n07700 900002\n")
	if a := w.next(t); a.Value != "+447700900002" || a.Counterparty.List != "two" {
		t.Fatalf("alert after the restart = %+v", a)
	}

	// The watcher itself restarts, from the cursor it kept.
	w.end()
	gb2 := mk("police-gb", gbState)
	w = watch(t, gb2, "suspects", investigation)
	publish(t, us, "three", "GB", "phone\n07700 900003\n")
	if a := w.next(t); a.Value != "+447700900003" || a.Counterparty.List != "three" {
		t.Fatalf("alert after the watcher's restart = %+v (an earlier alert delivered again?)", a)
	}
	if extra := sentinel(t, us, "sentinel", "07700 900004", w); len(extra) != 0 {
		t.Fatalf("alerts delivered twice: %+v", extra)
	}
}

// TestRetractionReachesAlertedOnly: a retracted entry stops matching at
// once; the agencies that were alerted of it are told, and an agency that
// was not is never alerted of it at all.
func TestRetractionReachesAlertedOnly(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gb, us, th := e.client(t, "police-gb"), e.client(t, "police-us"), e.client(t, "police-th")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900456\n")
	publish(t, th, "suspects", "GB", "phone\n07700 900123\n07700 900777\n")
	publish(t, us, "suspects", "GB", "phone\n07700 900123\n07700 900777\n07700 900888\n")
	usw := watch(t, us, "", investigation)
	// 900123 against police-gb in full; police-th's two matches (900123,
	// 900777) in a count, the level police-us has with Thailand.
	got := usw.take(t, 2)
	if got[0].Level != "full" || got[0].Counterparty.Agency != "police-gb" || got[1].Event != client.AlertCount || got[1].Matches != 2 {
		t.Fatalf("police-us alerts = %s", mustJSON(t, got))
	}

	r, err := gb.Retract(ctx, client.Entry{List: "suspects", Line: 2}, "number reassigned")
	if err != nil || r.Value != "+447700900123" || r.DecisionID == "" {
		t.Fatalf("retract = %+v, %v", r, err)
	}
	a := usw.next(t)
	if a.Event != client.AlertRetraction || a.Value != "+447700900123" || a.Line != 2 {
		t.Fatalf("retraction alert = %+v", a)
	}
	if strings.Contains(mustJSON(t, a), "police-gb") {
		t.Fatalf("the retraction alert names who retracted: %s", mustJSON(t, a))
	}
	if ms := overlapViews(t, gb, "suspects", investigation); len(ms) != 0 {
		t.Fatalf("police-gb's retracted entry still matches: %+v", ms)
	}
	for _, m := range overlapViews(t, us, "suspects", investigation) {
		if m.Counterparty.Agency == "police-gb" {
			t.Fatalf("police-us still matches the retracted entry: %+v", m)
		}
	}
	if _, err := gb.Retract(ctx, client.Entry{List: "suspects", Line: 2}, "again"); status.Code(errorsCause(err)) != codes.AlreadyExists {
		t.Fatalf("retracting twice: %v", err)
	}
	if _, err := gb.Retract(ctx, client.Entry{List: "suspects", Line: 9}, "no such line"); !errors.Is(err, client.ErrNoEntry) {
		t.Fatalf("retracting a line that is not an entry: %v", err)
	}
	rs, err := gb.Retractions(ctx)
	if err != nil || len(rs) != 1 || rs[0].Reason != "number reassigned" || rs[0].Line != 2 {
		t.Fatalf("retractions = %+v, %v", rs, err)
	}

	// police-th was never alerted of the retracted match: a watch started
	// now brings its standing matches only (police-us's two, in a count),
	// and no retraction.
	thAlerts := once(t, th)
	if len(thAlerts) != 1 || thAlerts[0].Event != client.AlertCount || thAlerts[0].Class != "law_enforcement/US" || thAlerts[0].Matches != 2 {
		t.Fatalf("police-th alerts = %s", mustJSON(t, thAlerts))
	}

	// Undone, the entry matches again.
	if _, err := gb.UndoRetraction(ctx, client.Entry{List: "suspects", Value: "+447700900123"}); err != nil {
		t.Fatal(err)
	}
	if a := usw.next(t); a.Event != client.AlertMatch || a.Value != "+447700900123" || a.Counterparty.Agency != "police-gb" {
		t.Fatalf("alert after the undo = %+v; want the match again", a)
	}
	res, err := gb.Overlaps(ctx, "suspects", investigation)
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Counterparty.Agency != "police-us" || len(res.Counts) != 1 || res.Counts[0].Matches != 1 {
		t.Fatalf("after the undo, police-gb's overlaps = %s, %v; want police-us's match and police-th's count", mustJSON(t, res), err)
	}
}

// TestVictimAlertsNeverNameHolder: a watcher alerted of a match against a
// victim list learns what overlaps would tell it — a flag and the liaison
// contact — never the holder or the list.
func TestVictimAlertsNeverNameHolder(t *testing.T) {
	e := start(t)
	gb, ngo := e.client(t, "police-gb"), e.client(t, "ngo-shelter")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900789\n")
	w := watch(t, gb, "suspects", investigation)
	publishVictims(t, ngo)
	a := w.next(t)
	if got, want := alertViews(t, []client.Alert{a}), overlapViews(t, gb, "suspects", investigation); mustJSON(t, got) != mustJSON(t, want) {
		t.Fatalf("alert:\n%s\noverlaps:\n%s", mustJSON(t, got), mustJSON(t, want))
	}
	if a.Level != "flag" || a.Counterparty != nil || a.LiaisonContact != "victim-liaison@gb.example" {
		t.Fatalf("victim alert = %+v", a)
	}
	if s := mustJSON(t, a); strings.Contains(s, "ngo-shelter") || strings.Contains(s, "victims") {
		t.Fatalf("the alert names the NGO or its list: %s", s)
	}
}

// TestCheckAlertsNobody: an NGO's check of a victim's number leaves no
// standing match, so no watcher is alerted.
func TestCheckAlertsNobody(t *testing.T) {
	e := start(t)
	gb, us, ngo := e.client(t, "police-gb"), e.client(t, "police-us"), e.client(t, "ngo-shelter")
	publish(t, gb, "suspects", "GB", "phone\n07700 900123\n07700 900456\n")
	w := watch(t, gb, "suspects", investigation)
	res, err := ngo.Check(context.Background(), strings.NewReader("phone\n07700 900123\n"),
		client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}}, client.Query{Purpose: "victim_support"})
	if err != nil || len(res.Counts) != 1 {
		t.Fatalf("check = %+v, %v", res, err)
	}
	if extra := sentinel(t, us, "sentinel", "07700 900456", w); len(extra) != 0 {
		t.Fatalf("the check alerted police-gb: %+v", extra)
	}
}
