package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

// testListingOrder: Lists returns an owner's lists by name, and VisibleLists
// the lists of a kind and key id by id.
func testListingOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := publish(t, s, "a", "c", "u", meta(phone, key1), []store.Entry{e("A", 1)})
	a := publish(t, s, "a", "a", "u", meta(phone, key1), nil)
	b := publish(t, s, "a", "b", "u", meta(email, key1), nil)
	x := publish(t, s, "x", "a", "u", meta(phone, key1), nil)
	y := publish(t, s, "x", "b", "u", meta(phone, key2), nil)
	tests := []struct {
		name string
		list func() ([]store.List, error)
		want []int64
	}{
		{"Lists(a) by name", func() ([]store.List, error) { return s.Lists(ctx, "a") }, []int64{a.ID, b.ID, c.ID}},
		{"Lists(x)", func() ([]store.List, error) { return s.Lists(ctx, "x") }, []int64{x.ID, y.ID}},
		{"Lists(nobody)", func() ([]store.List, error) { return s.Lists(ctx, "nobody") }, nil},
		{"VisibleLists(phone, k1) by id", func() ([]store.List, error) { return s.VisibleLists(ctx, phone, key1) }, []int64{c.ID, a.ID, x.ID}},
		{"VisibleLists(email, k1)", func() ([]store.List, error) { return s.VisibleLists(ctx, email, key1) }, []int64{b.ID}},
		{"VisibleLists(email, k2)", func() ([]store.List, error) { return s.VisibleLists(ctx, email, key2) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls, err := tt.list()
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(ls); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

// testUncommittedInvisible: open uploads, of a new version or of a list never
// committed, are invisible to Overlaps, Check, VisibleLists, Lists and
// GetList.
func testUncommittedInvisible(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := publish(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2)})
	// a has a committed version of l holding B and an open upload holding A,
	// and an open upload of a list n that was never committed.
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("B", 10)})
	begin(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("A", 20)})
	begin(t, s, "a", "n", "u1", meta(phone, key1), []store.Entry{e("A", 30), e("B", 31)})

	wantPairs(t, "Overlaps(m)", overlaps(t, s, m.ID), pairs(pair{2, v1.ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("B")),
		pairs(pair{0, m.ID}, pair{1, m.ID}, pair{1, v1.ID}))
	vis, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vis); !slices.Equal(got, []int64{m.ID, v1.ID}) {
		t.Errorf("VisibleLists = %v, want %v", got, []int64{m.ID, v1.ID})
	}
	ls, err := s.Lists(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ls); !slices.Equal(got, []int64{v1.ID}) {
		t.Errorf("Lists(a) = %v, want %v", got, []int64{v1.ID})
	}
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList(a, l)", got, v1)
	_, err = s.GetList(ctx, "a", "n")
	wantErr(t, "GetList(a, n)", err, store.ErrNotFound)
}

// fixture publishes lists that exercise every rule of Overlaps and Check.
func fixture(t *testing.T, s store.Store) map[string]store.List {
	t.Helper()
	e2 := func(tk []byte, ref uint64) store.Entry { return store.Entry{Token: tk, Ref: ref} }
	return map[string]store.List{
		// B twice with different refs; C and D under the same ref; E matches
		// only lists of a itself or of other kinds; P's prefix twin is in theirs.
		"mine": publish(t, s, "a", "mine", "u", meta(phone, key1), []store.Entry{
			e("A", 1), e("B", 2), e("B", 3), e("C", 4), e("D", 4), e("E", 5), e("P", 6), e("F", 7),
		}),
		"mine2":     publish(t, s, "a", "mine2", "u", meta(phone, key1), []store.Entry{e("E", 1), e("F", 2)}),
		"theirs":    publish(t, s, "b", "theirs", "u", meta(phone, key1), []store.Entry{e("A", 10), e("A", 11), e("B", 12), e("D", 13), e("C", 14), e2(twin("P"), 15)}),
		"email":     publish(t, s, "b", "email", "u", meta(email, key1), []store.Entry{e("A", 1), e("E", 2), e("F", 3)}),
		"old-key":   publish(t, s, "c", "old-key", "u", meta(phone, key2), []store.Entry{e("A", 1), e("E", 2), e("F", 3)}),
		"third":     publish(t, s, "c", "third", "u", meta(phone, key1), []store.Entry{e("D", 20), e("E", 21), e("D", 22)}),
		"unrelated": publish(t, s, "d", "unrelated", "u", meta(phone, key1), []store.Entry{e("Z", 1)}),
	}
}

// testOverlaps: Overlaps reports, once each, every entry of a list whose
// token is in another owner's list of the same kind and key id; a token that
// shares only a prefix does not match.
func testOverlaps(t *testing.T, s store.Store) {
	f := fixture(t, s)
	id := func(name string) int64 { return f[name].ID }
	tests := []struct {
		list string
		want map[pair]bool
	}{
		{"mine", pairs(
			pair{1, id("theirs")}, pair{2, id("theirs")}, pair{3, id("theirs")}, pair{4, id("theirs")},
			pair{4, id("third")}, pair{5, id("third")},
		)},
		{"mine2", pairs(pair{1, id("third")})},
		{"theirs", pairs(
			pair{10, id("mine")}, pair{11, id("mine")}, pair{12, id("mine")}, pair{13, id("mine")}, pair{14, id("mine")},
			pair{13, id("third")},
		)},
		{"third", pairs(
			pair{20, id("mine")}, pair{20, id("theirs")}, pair{22, id("mine")}, pair{22, id("theirs")},
			pair{21, id("mine")}, pair{21, id("mine2")},
		)},
		{"email", pairs()},
		{"old-key", pairs()},
		{"unrelated", pairs()},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			wantPairs(t, "Overlaps", overlaps(t, s, id(tt.list)), tt.want)
		})
	}
}

// testOverlapsCallbackError: an error from the Overlaps callback stops the
// stream and is returned.
func testOverlapsCallbackError(t *testing.T, s store.Store) {
	f := fixture(t, s)
	stop := errors.New("stop")
	calls := 0
	err := s.Overlaps(t.Context(), f["mine"].ID, func(uint64, int64) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Overlaps = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

// testCheck: Check reports, once each and in index order, every token found
// in a list of the kind and key id, whoever owns it; a token that shares only
// a prefix does not match.
func testCheck(t *testing.T, s store.Store) {
	f := fixture(t, s)
	id := func(name string) int64 { return f[name].ID }
	tests := []struct {
		name      string
		kind, key string
		tokens    [][]byte
		want      map[pair]bool
	}{
		{"phone k1", phone, key1, [][]byte{tok("A"), tok("E"), tok("X"), tok("P"), tok("B")}, pairs(
			pair{0, id("mine")}, pair{0, id("theirs")},
			pair{1, id("mine")}, pair{1, id("mine2")}, pair{1, id("third")},
			pair{3, id("mine")},
			pair{4, id("mine")}, pair{4, id("theirs")},
		)},
		{"prefix twin", phone, key1, [][]byte{twin("P"), twin("A")}, pairs(pair{0, id("theirs")})},
		{"same token twice", phone, key1, [][]byte{tok("D"), tok("D")}, pairs(
			pair{0, id("mine")}, pair{0, id("theirs")}, pair{0, id("third")},
			pair{1, id("mine")}, pair{1, id("theirs")}, pair{1, id("third")},
		)},
		{"email k1", email, key1, [][]byte{tok("A"), tok("B")}, pairs(pair{0, id("email")})},
		{"phone k2", phone, key2, [][]byte{tok("F")}, pairs(pair{0, id("old-key")})},
		{"unknown kind", "sha1", key1, [][]byte{tok("A")}, pairs()},
		{"no tokens", phone, key1, nil, pairs()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPairs(t, "Check", check(t, s, tt.kind, tt.key, tt.tokens...), tt.want)
		})
	}
}

// testCheckWritesNothing: Check stores nothing: checked tokens match nothing
// afterwards, and an unseen kind and key id gets no list.
func testCheckWritesNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := fixture(t, s)
	before, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	check(t, s, phone, key1, tok("X"), tok("Y"), tok("A"))
	check(t, s, "new-kind", "new-key", tok("X"))
	after, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(before, after, equalList) {
		t.Errorf("VisibleLists changed by Check: %v, then %v", ids(before), ids(after))
	}
	if ls, err := s.VisibleLists(ctx, "new-kind", "new-key"); err != nil || len(ls) != 0 {
		t.Errorf("VisibleLists(new-kind, new-key) = %v, %v; want none", ids(ls), err)
	}
	// The checked tokens match nothing afterwards.
	wantPairs(t, "Check again", check(t, s, phone, key1, tok("X"), tok("Y")), pairs())
	wantPairs(t, "Overlaps(unrelated)", overlaps(t, s, f["unrelated"].ID), pairs())
}

// testDeleteList: DeleteList erases a list's committed and staged entries
// and uploads and counts them, frees the name for a new list, and erases the
// open upload of a list never committed.
func testDeleteList(t *testing.T, s store.Store) {
	ctx := t.Context()
	f := fixture(t, s)
	// An open upload of a new version of mine, with 3 staged entries.
	begin(t, s, "a", "mine", "u2", meta(phone, key1), []store.Entry{e("A", 1), e("Q", 2), e("R", 3)})

	n, err := s.DeleteList(ctx, "a", "mine", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := f["mine"].Entries + 3; n != want {
		t.Errorf("DeleteList = %d, want %d (committed and staged entries)", n, want)
	}
	_, err = s.GetList(ctx, "a", "mine")
	wantErr(t, "GetList", err, store.ErrNotFound)
	wantErr(t, "Overlaps(mine)", s.Overlaps(ctx, f["mine"].ID, func(uint64, int64) error { return nil }), store.ErrNotFound)
	_, _, err = s.UploadStatus(ctx, "a", "mine", "u2")
	wantErr(t, "UploadStatus(open upload)", err, store.ErrNotFound)
	_, _, err = s.UploadStatus(ctx, "a", "mine", "u")
	wantErr(t, "UploadStatus(committed upload)", err, store.ErrNotFound)
	_, err = s.DeleteList(ctx, "a", "mine", nil)
	wantErr(t, "DeleteList again", err, store.ErrNotFound)

	wantPairs(t, "Overlaps(theirs)", overlaps(t, s, f["theirs"].ID), pairs(pair{13, f["third"].ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("Q"), tok("P")), pairs(pair{0, f["theirs"].ID}))
	ls, err := s.Lists(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ls); !slices.Equal(got, []int64{f["mine2"].ID}) {
		t.Errorf("Lists(a) = %v, want %v", got, []int64{f["mine2"].ID})
	}

	// The name can be published again, as a new list.
	l := publish(t, s, "a", "mine", "u", meta(phone, key1), []store.Entry{e("A", 1)})
	if l.ID == f["mine"].ID {
		t.Errorf("republished list reuses ID %d", l.ID)
	}
	wantPairs(t, "Overlaps(republished)", overlaps(t, s, l.ID), pairs(pair{1, f["theirs"].ID}))

	// Deleting a list that was never committed erases its open upload.
	begin(t, s, "a", "draft", "u", meta(phone, key1), []store.Entry{e("A", 1)})
	if n, err := s.DeleteList(ctx, "a", "draft", nil); err != nil || n != 1 {
		t.Errorf("DeleteList(draft) = %d, %v; want 1, nil", n, err)
	}
	_, _, err = s.UploadStatus(ctx, "a", "draft", "u")
	wantErr(t, "UploadStatus(draft)", err, store.ErrNotFound)
}

// testExpiredLists: only committed lists past their expiry are returned.
func testExpiredLists(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	past, future, never := meta(phone, key1), meta(phone, key1), meta(phone, key1)
	past.ExpiresAt, future.ExpiresAt = now.Add(-time.Hour), now.Add(time.Hour)
	publish(t, s, "a", "past", "u1", past, []store.Entry{e("x", 0)})
	publish(t, s, "a", "future", "u2", future, []store.Entry{e("y", 0)})
	publish(t, s, "b", "never", "u3", never, []store.Entry{e("z", 0)})
	begin(t, s, "b", "open", "u4", past, []store.Entry{e("w", 0)})
	ls, err := s.ExpiredLists(ctx, now)
	if err != nil || len(ls) != 1 || ls[0].Name != "past" || ls[0].Owner != "a" {
		t.Fatalf("ExpiredLists = %+v, %v; want a/past only", ls, err)
	}
}

// testNotFound: operations on an unknown upload, list or list id, or on
// another owner's or list's, fail with ErrNotFound and change nothing.
func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	l := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 1)})
	begin(t, s, "a", "l", "u2", meta(phone, key1), nil)
	nop := func(uint64, int64) error { return nil }
	tests := []struct {
		name string
		op   func() error
	}{
		{"PutBatch unknown upload", func() error {
			_, err := s.PutBatch(ctx, "a", "l", "nope", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"PutBatch other owner's upload", func() error {
			_, err := s.PutBatch(ctx, "b", "l", "u2", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"PutBatch other list's upload", func() error {
			_, err := s.PutBatch(ctx, "a", "m", "u2", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"UploadStatus unknown upload", func() error {
			_, _, err := s.UploadStatus(ctx, "a", "l", "nope")
			return err
		}},
		{"UploadStatus other owner's upload", func() error {
			_, _, err := s.UploadStatus(ctx, "b", "l", "u1")
			return err
		}},
		{"CommitUpload unknown upload", func() error {
			_, err := s.CommitUpload(ctx, "a", "l", "nope", 0, 0, time.Now(), nil)
			return err
		}},
		{"CommitUpload other owner's upload", func() error {
			_, err := s.CommitUpload(ctx, "b", "l", "u2", 0, 0, time.Now(), nil)
			return err
		}},
		{"GetList unknown list", func() error {
			_, err := s.GetList(ctx, "a", "nope")
			return err
		}},
		{"GetList other owner's list", func() error {
			_, err := s.GetList(ctx, "b", "l")
			return err
		}},
		{"DeleteList unknown list", func() error {
			_, err := s.DeleteList(ctx, "a", "nope", nil)
			return err
		}},
		{"DeleteList other owner's list", func() error {
			_, err := s.DeleteList(ctx, "b", "l", nil)
			return err
		}},
		{"Overlaps unknown id", func() error { return s.Overlaps(ctx, l.ID+1000, nop) }},
		{"Overlaps zero id", func() error { return s.Overlaps(ctx, 0, nop) }},
		{"Overlaps negative id", func() error { return s.Overlaps(ctx, -1, nop) }},
		{"Overlaps huge id", func() error { return s.Overlaps(ctx, 1<<62, nop) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.op(), store.ErrNotFound)
		})
	}
	if _, err := s.GetList(ctx, "a", "l"); err != nil {
		t.Errorf("GetList(a, l) after the failed operations: %v", err)
	}
}

// testInvalid: malformed uploads, batches and tokens fail with ErrInvalid,
// show no token and store nothing.
func testInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	short, long := tok("A")[:31], append(tok("A"), 0)
	withMeta := func(change func(u *store.Upload)) func() error {
		return func() error {
			u := store.Upload{Owner: "a", List: "m", ID: "u", Meta: meta(phone, key1)}
			change(&u)
			return s.BeginUpload(ctx, u)
		}
	}
	put := func(entries ...store.Entry) func() error {
		return func() error {
			_, err := s.PutBatch(ctx, "a", "l", "u", 0, entries)
			return err
		}
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{"BeginUpload no owner", withMeta(func(u *store.Upload) { u.Owner = "" })},
		{"BeginUpload no list", withMeta(func(u *store.Upload) { u.List = "" })},
		{"BeginUpload no id", withMeta(func(u *store.Upload) { u.ID = "" })},
		{"BeginUpload no kind", withMeta(func(u *store.Upload) { u.Meta.Kind = "" })},
		{"BeginUpload no key id", withMeta(func(u *store.Upload) { u.Meta.KeyID = "" })},
		{"BeginUpload other owner in metadata", withMeta(func(u *store.Upload) { u.Meta.Owner = "b" })},
		{"BeginUpload other name in metadata", withMeta(func(u *store.Upload) { u.Meta.Name = "x" })},
		{"PutBatch short token", put(e("B", 1), store.Entry{Token: short, Ref: 2})},
		{"PutBatch long token", put(store.Entry{Token: long, Ref: 1})},
		{"PutBatch no token", put(store.Entry{Ref: 1})},
		{"Check short token", func() error {
			return s.Check(ctx, phone, key1, [][]byte{tok("B"), short}, func(int, int64) error { return nil })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			wantErr(t, tt.name, err, store.ErrInvalid)
			noTokens(t, err, tok("A"), tok("B"), short, long)
		})
	}
	if seqs, _, err := s.UploadStatus(ctx, "a", "l", "u"); err != nil || len(seqs) != 0 {
		t.Errorf("UploadStatus after invalid batches = %v, %v; want no batches", seqs, err)
	}
	if ls, err := s.Lists(ctx, "a"); err != nil || len(ls) != 0 {
		t.Errorf("Lists(a) = %v, %v; want none", ids(ls), err)
	}
}

// testContextCanceled: every operation fails with context.Canceled under a
// canceled context and writes nothing, and a cancel while Overlaps or Check
// streams stops the callbacks.
func testContextCanceled(t *testing.T, s store.Store) {
	f := fixture(t, s)
	begin(t, s, "a", "l", "u", meta(phone, key1), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	nop := func(uint64, int64) error { return nil }
	tests := []struct {
		name string
		op   func() error
	}{
		{"BeginUpload", func() error {
			return s.BeginUpload(ctx, store.Upload{Owner: "a", List: "n", ID: "u", Meta: meta(phone, key1)})
		}},
		{"PutBatch", func() error {
			_, err := s.PutBatch(ctx, "a", "l", "u", 0, []store.Entry{e("A", 1)})
			return err
		}},
		{"UploadStatus", func() error {
			_, _, err := s.UploadStatus(ctx, "a", "l", "u")
			return err
		}},
		{"CommitUpload", func() error {
			_, err := s.CommitUpload(ctx, "a", "l", "u", 0, 0, time.Now(), nil)
			return err
		}},
		{"GetList", func() error {
			_, err := s.GetList(ctx, "a", "mine")
			return err
		}},
		{"Lists", func() error {
			_, err := s.Lists(ctx, "a")
			return err
		}},
		{"VisibleLists", func() error {
			_, err := s.VisibleLists(ctx, phone, key1)
			return err
		}},
		{"DeleteList", func() error {
			_, err := s.DeleteList(ctx, "a", "mine", nil)
			return err
		}},
		{"Overlaps", func() error { return s.Overlaps(ctx, f["mine"].ID, nop) }},
		{"Check", func() error {
			return s.Check(ctx, phone, key1, [][]byte{tok("A")}, func(int, int64) error { return nil })
		}},
		{"PurgeUploads", func() error {
			_, err := s.PurgeUploads(ctx, time.Now().Add(time.Hour))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.op(), context.Canceled)
		})
	}
	// Nothing was written.
	live := t.Context()
	if seqs, committed, err := s.UploadStatus(live, "a", "l", "u"); err != nil || committed || len(seqs) != 0 {
		t.Errorf("UploadStatus = %v, %v, %v; want an open upload without batches", seqs, committed, err)
	}
	if _, err := s.GetList(live, "a", "mine"); err != nil {
		t.Errorf("GetList(mine): %v", err)
	}
	if _, _, err := s.UploadStatus(live, "a", "n", "u"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UploadStatus(n): %v, want ErrNotFound", err)
	}

	// Canceled while streaming: the callback is not called again.
	t.Run("during Overlaps", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		err := s.Overlaps(ctx, f["mine"].ID, func(uint64, int64) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("Overlaps = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
	t.Run("during Check", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		err := s.Check(ctx, phone, key1, [][]byte{tok("A"), tok("B"), tok("D")}, func(int, int64) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("Check = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
}
