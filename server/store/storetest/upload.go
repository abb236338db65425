package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

// testPublishAndGet: an upload put in batches and committed comes back with
// its metadata from CommitUpload, GetList, Lists and VisibleLists, committed
// in UTC, and an entry reference keeps all 64 bits.
func testPublishAndGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.FixedZone("CET", 3600))
	m := store.List{
		Kind:          phone,
		Category:      "victim",
		Jurisdiction:  "GB-ENG",
		KeyID:         key1,
		ExpiresAt:     time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		Sharing:       store.Sharing{VictimConsentRoles: []string{"police", "ngo"}, NGOVisible: true},
		Normalization: map[string]string{"phone.region": "GB", "email.dots": "gmail.com"},
	}
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: m}); err != nil {
		t.Fatal(err)
	}
	for seq, batch := range [][]store.Entry{{e("A", 1), e("B", 2)}, {e("C", 1<<63+5)}} {
		if dup, err := s.PutBatch(ctx, "a", "l", "u1", uint64(seq), batch); err != nil || dup {
			t.Fatalf("PutBatch(%d) = %v, %v", seq, dup, err)
		}
	}
	seqs, committed, err := s.UploadStatus(ctx, "a", "l", "u1")
	if err != nil || committed || !slices.Equal(seqs, []uint64{0, 1}) {
		t.Fatalf("UploadStatus = %v, %v, %v; want [0 1], false, nil", seqs, committed, err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 2, 3, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := m
	want.ID, want.Owner, want.Name, want.Entries, want.CommittedAt, want.UploadID = l.ID, "a", "l", 3, at, "u1"
	if l.CommittedAt.Location() != time.UTC {
		t.Errorf("CommittedAt %v is not in UTC", l.CommittedAt)
	}
	if l.ID == 0 {
		t.Error("CommitUpload: list ID is 0")
	}
	wantList(t, "CommitUpload", l, want)
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList", got, want)

	ls, err := s.Lists(ctx, "a")
	if err != nil || len(ls) != 1 {
		t.Fatalf("Lists(a) = %v, %v; want one list", ls, err)
	}
	wantList(t, "Lists(a)[0]", ls[0], want)
	vis, err := s.VisibleLists(ctx, phone, key1)
	if err != nil || len(vis) != 1 {
		t.Fatalf("VisibleLists = %v, %v; want one list", vis, err)
	}
	wantList(t, "VisibleLists[0]", vis[0], want)

	seqs, committed, err = s.UploadStatus(ctx, "a", "l", "u1")
	if err != nil || !committed || !slices.Equal(seqs, []uint64{0, 1}) {
		t.Errorf("UploadStatus after commit = %v, %v, %v; want [0 1], true, nil", seqs, committed, err)
	}
	// A reference is kept bit for bit, including the top bit.
	b := publish(t, s, "b", "l", "u1", meta(phone, key1), []store.Entry{e("C", 7)})
	wantPairs(t, "Overlaps(b)", overlaps(t, s, b.ID), pairs(pair{7, l.ID}))
	wantPairs(t, "Overlaps(a)", overlaps(t, s, l.ID), pairs(pair{1<<63 + 5, b.ID}))
}

// testEmptyUpload: an upload without batches commits as a list of no entries
// that overlaps nothing.
func testEmptyUpload(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 0, 0, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 0 {
		t.Errorf("Entries = %d, want 0", l.Entries)
	}
	wantPairs(t, "Overlaps", overlaps(t, s, l.ID), pairs())
}

// testBatchIdempotence: a batch sent again with the same content is a
// duplicate and with other content a conflict that shows no token; only the
// first content is committed, and after the commit no batch can change.
func testBatchIdempotence(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBatch(ctx, "a", "l", "u1", 0, []store.Entry{e("A", 1), e("B", 2)}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		seq     uint64
		entries []store.Entry
		dup     bool
		err     error
	}{
		{"same content", 0, []store.Entry{e("A", 1), e("B", 2)}, true, nil},
		{"different token", 0, []store.Entry{e("A", 1), e("X", 2)}, false, store.ErrConflict},
		{"different ref", 0, []store.Entry{e("A", 1), e("B", 3)}, false, store.ErrConflict},
		{"different order", 0, []store.Entry{e("B", 2), e("A", 1)}, false, store.ErrConflict},
		{"fewer entries", 0, []store.Entry{e("A", 1)}, false, store.ErrConflict},
		{"more entries", 0, []store.Entry{e("A", 1), e("B", 2), e("X", 3)}, false, store.ErrConflict},
		{"new seq", 1, []store.Entry{e("C", 3)}, false, nil},
		{"new seq again", 1, []store.Entry{e("C", 3)}, true, nil},
		{"empty batch", 2, nil, false, nil},
		{"empty batch again", 2, []store.Entry{}, true, nil},
		{"entries for the empty batch", 2, []store.Entry{e("X", 4)}, false, store.ErrConflict},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			dup, err := s.PutBatch(ctx, "a", "l", "u1", st.seq, st.entries)
			if dup != st.dup || !errors.Is(err, st.err) {
				t.Errorf("PutBatch = %v, %v; want %v, %v", dup, err, st.dup, st.err)
			}
			noTokens(t, err, tok("A"), tok("B"), tok("X"))
		})
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 3, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 3 {
		t.Errorf("Entries = %d, want 3", l.Entries)
	}
	// Only the first content of each batch was written.
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("B"), tok("C"), tok("X")),
		pairs(pair{0, l.ID}, pair{1, l.ID}, pair{2, l.ID}))

	after := []struct {
		name    string
		seq     uint64
		entries []store.Entry
		dup     bool
		err     error
	}{
		{"held batch after commit", 0, []store.Entry{e("A", 1), e("B", 2)}, true, nil},
		{"different content after commit", 0, []store.Entry{e("X", 1)}, false, store.ErrConflict},
		{"new batch after commit", 3, []store.Entry{e("X", 1)}, false, store.ErrConflict},
	}
	for _, st := range after {
		t.Run(st.name, func(t *testing.T) {
			dup, err := s.PutBatch(ctx, "a", "l", "u1", st.seq, st.entries)
			if dup != st.dup || !errors.Is(err, st.err) {
				t.Errorf("PutBatch = %v, %v; want %v, %v", dup, err, st.dup, st.err)
			}
		})
	}
	wantPairs(t, "Check(X) after commit", check(t, s, phone, key1, tok("X")), pairs())
}

// testResume: beginning an upload again with the same metadata resumes it
// with its batches, any other metadata is a conflict, and the resumed upload
// commits with all its batches.
func testResume(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := meta(phone, key1)
	m.ExpiresAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Sharing = store.Sharing{VictimConsentRoles: []string{"police"}, NGOVisible: true}
	m.Normalization = map[string]string{"a": "1", "b": "2"}
	u := store.Upload{Owner: "a", List: "l", ID: "u1", Meta: m}
	if err := s.BeginUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{0, 2} {
		if _, err := s.PutBatch(ctx, "a", "l", "u1", seq, []store.Entry{e(fmt.Sprint(seq), seq)}); err != nil {
			t.Fatal(err)
		}
	}
	// The client was interrupted; it resumes with the same metadata.
	same := u
	same.Meta.Owner, same.Meta.Name = "a", "l"
	same.Meta.Normalization = map[string]string{"b": "2", "a": "1"}
	if err := s.BeginUpload(ctx, same); err != nil {
		t.Fatalf("resume: %v", err)
	}
	seqs, committed, err := s.UploadStatus(ctx, "a", "l", "u1")
	if err != nil || committed || !slices.Equal(seqs, []uint64{0, 2}) {
		t.Fatalf("UploadStatus = %v, %v, %v; want [0 2], false, nil", seqs, committed, err)
	}
	changes := []struct {
		name   string
		change func(m *store.List)
	}{
		{"kind", func(m *store.List) { m.Kind = email }},
		{"key id", func(m *store.List) { m.KeyID = key2 }},
		{"category", func(m *store.List) { m.Category = "victim" }},
		{"jurisdiction", func(m *store.List) { m.Jurisdiction = "FR" }},
		{"expiry", func(m *store.List) { m.ExpiresAt = m.ExpiresAt.Add(time.Second) }},
		{"no expiry", func(m *store.List) { m.ExpiresAt = time.Time{} }},
		{"consent roles", func(m *store.List) { m.Sharing.VictimConsentRoles = []string{"police", "ngo"} }},
		{"ngo visible", func(m *store.List) { m.Sharing.NGOVisible = false }},
		{"normalization", func(m *store.List) { m.Normalization = map[string]string{"a": "1"} }},
	}
	for _, c := range changes {
		t.Run("different "+c.name, func(t *testing.T) {
			d := u
			d.Meta.Sharing.VictimConsentRoles = slices.Clone(m.Sharing.VictimConsentRoles)
			d.Meta.Normalization = maps.Clone(m.Normalization)
			c.change(&d.Meta)
			wantErr(t, "BeginUpload", s.BeginUpload(ctx, d), store.ErrConflict)
		})
	}
	if _, err := s.PutBatch(ctx, "a", "l", "u1", 1, []store.Entry{e("1", 1)}); err != nil {
		t.Fatal(err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 3, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 3 || !l.ExpiresAt.Equal(m.ExpiresAt) {
		t.Errorf("committed %+v, want 3 entries and the first metadata", l)
	}
	wantPairs(t, "Check", check(t, s, phone, key1, tok("0"), tok("1"), tok("2")),
		pairs(pair{0, l.ID}, pair{1, l.ID}, pair{2, l.ID}))
}

// testCommitIdempotence: committing a committed upload again returns the
// same list, and once a later upload supersedes it every operation on it is
// a conflict.
func testCommitIdempotence(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}
	first := publish(t, s, "a", "l", "u1", u.Meta, []store.Entry{e("A", 1), e("B", 2), e("C", 3)})
	again, err := s.CommitUpload(ctx, "a", "l", "u1", 2, 3, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatalf("second commit: %v", err)
	}
	wantList(t, "second commit", again, first)
	if err := s.BeginUpload(ctx, u); err != nil {
		t.Errorf("BeginUpload of the committed upload: %v", err)
	}
	if _, committed, err := s.UploadStatus(ctx, "a", "l", "u1"); err != nil || !committed {
		t.Errorf("UploadStatus = %v, %v; want committed", committed, err)
	}
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList", got, first)

	// A later upload supersedes u1; u1 can no longer be used.
	second := publish(t, s, "a", "l", "u2", u.Meta, []store.Entry{e("D", 1)})
	if second.ID == first.ID {
		t.Errorf("new version has the old ID %d", first.ID)
	}
	supersededOps := []struct {
		name string
		op   func() error
	}{
		{"CommitUpload", func() error {
			_, err := s.CommitUpload(ctx, "a", "l", "u1", 2, 3, time.Now(), nil)
			return err
		}},
		{"BeginUpload", func() error { return s.BeginUpload(ctx, u) }},
		{"PutBatch", func() error {
			_, err := s.PutBatch(ctx, "a", "l", "u1", 0, []store.Entry{e("A", 1), e("B", 2)})
			return err
		}},
		{"UploadStatus", func() error {
			_, _, err := s.UploadStatus(ctx, "a", "l", "u1")
			return err
		}},
	}
	for _, o := range supersededOps {
		t.Run("superseded "+o.name, func(t *testing.T) {
			wantErr(t, o.name, o.op(), store.ErrConflict)
		})
	}
	got, err = s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList after supersede", got, second)
}

// testIncomplete: a commit with a batch missing or the wrong batch or entry
// count fails with ErrIncomplete, shows no token and publishes nothing.
func testIncomplete(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: "u1", Meta: meta(phone, key1)}); err != nil {
		t.Fatal(err)
	}
	put := func(seq uint64, entries ...store.Entry) {
		t.Helper()
		if _, err := s.PutBatch(ctx, "a", "l", "u1", seq, entries); err != nil {
			t.Fatal(err)
		}
	}
	put(0, e("A", 1), e("B", 2))
	put(2, e("C", 3))
	_, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 3, time.Now(), nil)
	wantErr(t, "commit with batch 1 missing", err, store.ErrIncomplete)
	_, err = s.CommitUpload(ctx, "a", "l", "u1", 4, 4, time.Now(), nil)
	wantErr(t, "commit with batches 1 and 3 missing", err, store.ErrIncomplete)
	put(1, e("D", 4))

	tests := []struct {
		name           string
		batches, total uint64
	}{
		{"too many entries", 3, 5},
		{"too few entries", 3, 3},
		{"batch beyond the total", 2, 4},
		{"batch missing at the end", 4, 4},
		{"no batches declared", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CommitUpload(ctx, "a", "l", "u1", tt.batches, tt.total, time.Now(), nil)
			wantErr(t, "CommitUpload", err, store.ErrIncomplete)
			noTokens(t, err, tok("A"), tok("B"), tok("C"), tok("D"))
		})
	}
	if _, err := s.GetList(ctx, "a", "l"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetList after failed commits: %v, want ErrNotFound", err)
	}
	l, err := s.CommitUpload(ctx, "a", "l", "u1", 3, 4, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Entries != 4 {
		t.Errorf("Entries = %d, want 4", l.Entries)
	}
}

// testCommitReplaces: a new version of a list replaces the old one, under a
// new id, in Overlaps, Check and VisibleLists, and the old id is not found.
func testCommitReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := publish(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("A", 1), e("B", 2), e("C", 3), e("D", 4)})
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 10), e("B", 11)})
	wantPairs(t, "Overlaps(m) with v1", overlaps(t, s, m.ID), pairs(pair{1, v1.ID}, pair{2, v1.ID}))

	v2 := publish(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("C", 12)})
	if v2.ID == v1.ID {
		t.Fatalf("v2 has v1's ID %d", v1.ID)
	}
	wantPairs(t, "Overlaps(m) with v2", overlaps(t, s, m.ID), pairs(pair{3, v2.ID}))
	wantPairs(t, "Overlaps(v2)", overlaps(t, s, v2.ID), pairs(pair{12, m.ID}))
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("C")),
		pairs(pair{0, m.ID}, pair{1, m.ID}, pair{1, v2.ID}))
	wantErr(t, "Overlaps(v1)", s.Overlaps(ctx, v1.ID, func(uint64, int64) error { return nil }), store.ErrNotFound)
	vis, err := s.VisibleLists(ctx, phone, key1)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vis); !slices.Equal(got, []int64{m.ID, v2.ID}) {
		t.Errorf("VisibleLists = %v, want %v", got, []int64{m.ID, v2.ID})
	}
}

// testCommitAtomicForReaders: Overlaps and Check running while versions are
// committed each see one whole version, never a mix.
func testCommitAtomicForReaders(t *testing.T, s store.Store) {
	const n = 20 // m holds T0..T19; versions of l alternate T0..T9 and T10..T19
	var all []store.Entry
	var tokens [][]byte
	for i := range n {
		all = append(all, e(fmt.Sprint("T", i), uint64(i)))
		tokens = append(tokens, tok(fmt.Sprint("T", i)))
	}
	m := publish(t, s, "b", "m", "u", meta(phone, key1), all)
	publish(t, s, "a", "l", "v0", meta(phone, key1), all[:n/2])

	// valid reports whether a result is exactly one version's: one list,
	// and the refs (or indexes) of one half.
	valid := func(got map[pair]bool) bool {
		var lists []int64
		var refs []uint64
		for p := range got {
			lists = append(lists, p.List)
			refs = append(refs, p.Ref)
		}
		slices.Sort(refs)
		if len(slices.Compact(lists)) != 1 || len(refs) != n/2 {
			return false
		}
		return refs[0] == 0 && refs[n/2-1] == n/2-1 || refs[0] == n/2 && refs[n/2-1] == n-1
	}
	const versions = 10
	done := make(chan struct{})
	defer func() { <-done }() // also when a check below fails
	var writeErr error
	go func() {
		defer close(done)
		ctx := context.Background()
		for v := 1; v <= versions; v++ {
			half := all[:n/2]
			if v%2 == 1 {
				half = all[n/2:]
			}
			id := fmt.Sprint("v", v)
			if err := s.BeginUpload(ctx, store.Upload{Owner: "a", List: "l", ID: id, Meta: meta(phone, key1)}); err != nil {
				writeErr = err
				return
			}
			for seq := range uint64(2) {
				if _, err := s.PutBatch(ctx, "a", "l", id, seq, half[seq*n/4:(seq+1)*n/4]); err != nil {
					writeErr = err
					return
				}
			}
			if _, err := s.CommitUpload(ctx, "a", "l", id, 2, n/2, time.Now(), nil); err != nil {
				writeErr = err
				return
			}
		}
	}()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		if got := overlaps(t, s, m.ID); !valid(got) {
			t.Fatalf("Overlaps saw a mix of versions: %v", sortedPairs(got))
		}
		got := check(t, s, phone, key1, tokens...)
		maps.DeleteFunc(got, func(p pair, _ bool) bool { return p.List == m.ID })
		if !valid(got) {
			t.Fatalf("Check saw a mix of versions: %v", sortedPairs(got))
		}
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	t.Logf("%d consistent reads during %d commits", reads, versions)
}

// testConcurrentUploads: uploads by several owners at once, each batch sent
// twice, all commit whole and overlap on their shared token.
func testConcurrentUploads(t *testing.T, s store.Store) {
	const (
		uploaders = 8
		batches   = 10
		perBatch  = 20
	)
	ctx := t.Context()
	var wg sync.WaitGroup
	lists := make([]store.List, uploaders)
	errs := make([]error, uploaders)
	for i := range uploaders {
		wg.Go(func() {
			owner := fmt.Sprint("agency-", i)
			lists[i], errs[i] = upload(ctx, s, owner, batches, perBatch)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("uploader %d: %v", i, err)
		}
	}
	// Every list holds the shared token S under ref 0 and its own tokens.
	for i, l := range lists {
		if l.Entries != batches*perBatch {
			t.Errorf("list %d: Entries = %d, want %d", i, l.Entries, batches*perBatch)
		}
		want := pairs()
		for j, other := range lists {
			if j != i {
				want[pair{0, other.ID}] = true
			}
		}
		wantPairs(t, fmt.Sprint("Overlaps(", i, ")"), overlaps(t, s, l.ID), want)
	}
}

// upload publishes the owner's list "shared" in batches, each sent twice.
func upload(ctx context.Context, s store.Store, owner string, batches, perBatch int) (store.List, error) {
	if err := s.BeginUpload(ctx, store.Upload{Owner: owner, List: "shared", ID: "u", Meta: meta(phone, key1)}); err != nil {
		return store.List{}, err
	}
	for b := range batches {
		var entries []store.Entry
		for i := range perBatch {
			ref := uint64(b*perBatch + i)
			if ref == 0 {
				entries = append(entries, e("S", 0))
			} else {
				entries = append(entries, e(fmt.Sprint(owner, "/", ref), ref))
			}
		}
		for range 2 {
			if _, err := s.PutBatch(ctx, owner, "shared", "u", uint64(b), entries); err != nil {
				return store.List{}, err
			}
		}
	}
	return s.CommitUpload(ctx, owner, "shared", "u", uint64(batches), uint64(batches*perBatch), time.Now(), nil)
}

// testPurgeUploads: PurgeUploads erases only the open uploads begun before
// the cutoff and leaves committed lists and their uploads alone.
func testPurgeUploads(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := publish(t, s, "a", "l", "u1", meta(phone, key1), []store.Entry{e("A", 1)})
	begin(t, s, "a", "l", "u2", meta(phone, key1), []store.Entry{e("B", 1)})
	begin(t, s, "b", "m", "u1", meta(phone, key1), []store.Entry{e("C", 1), e("D", 2), e("E", 3)})

	if n, err := s.PurgeUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("PurgeUploads(an hour ago) = %d, %v; want 0, nil", n, err)
	}
	if seqs, _, err := s.UploadStatus(ctx, "a", "l", "u2"); err != nil || len(seqs) != 1 {
		t.Errorf("UploadStatus(u2) after a purge of older uploads = %v, %v", seqs, err)
	}
	if n, err := s.PurgeUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 2 {
		t.Errorf("PurgeUploads(now) = %d, %v; want 2, nil", n, err)
	}
	for _, u := range []struct{ owner, list, id string }{{"a", "l", "u2"}, {"b", "m", "u1"}} {
		_, _, err := s.UploadStatus(ctx, u.owner, u.list, u.id)
		wantErr(t, fmt.Sprintf("UploadStatus(%s/%s/%s)", u.owner, u.list, u.id), err, store.ErrNotFound)
	}
	if _, committed, err := s.UploadStatus(ctx, "a", "l", "u1"); err != nil || !committed {
		t.Errorf("UploadStatus(committed u1) = %v, %v; want committed", committed, err)
	}
	got, err := s.GetList(ctx, "a", "l")
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, "GetList", got, v1)
	wantPairs(t, "Check", check(t, s, phone, key1, tok("A"), tok("B"), tok("C")), pairs(pair{0, v1.ID}))
	if n, err := s.PurgeUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != 0 {
		t.Errorf("PurgeUploads again = %d, %v; want 0, nil", n, err)
	}
}
