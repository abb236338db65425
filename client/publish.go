package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/client/normalize"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// Sharing is what the owner of a list agrees to share (see the policy).
type Sharing struct {
	// VictimConsentRoles are the roles the listed victims consented to
	// share with, for lists of category victim.
	VictimConsentRoles []string
	// NGOVisible lets NGOs see matches against this list at full level.
	NGOVisible bool
}

// Guard bounds how much a republish may change a list unless forced: a
// file read with the wrong settings (a forgotten default region, say) must
// not silently replace a good list.
type Guard struct {
	// MaxShrink is the largest fraction of the list's current entries a
	// republish may drop.
	MaxShrink float64
	// MaxRejected is the largest fraction of the file's rows a republish
	// may reject.
	MaxRejected float64
}

// DefaultGuard refuses a republish that drops more than half the list or
// rejects more than half the file's rows: a forgotten default region
// rejects nearly every national number, while messy but right files reject
// a few.
var DefaultGuard = Guard{MaxShrink: 0.5, MaxRejected: 0.5}

// PublishOptions describe a list to publish.
type PublishOptions struct {
	List      string
	Kind      normalize.Kind
	Category  string
	Normalize normalize.Options
	// Column picks the CSV column: header name, 1-based number, or "" for
	// the first.
	Column string
	// ExpiresAt is the list's retention; zero means no expiry.
	ExpiresAt time.Time
	Sharing   Sharing
	// DryRun normalizes the file, checks it against the hub's vocabulary,
	// the key server's key and the guard, and reports; it blinds and sends
	// nothing.
	DryRun bool
	// Guard bounds a republish (nil: DefaultGuard); Force lifts it.
	Guard *Guard
	Force bool
}

// PublishResult reports what a publish did.
type PublishResult struct {
	// Report lists every accepted, warned and rejected row.
	Report normalize.Report
	// List is the committed list as the hub describes it (for a dry run,
	// the list as it would be, with its entries).
	List *veilmatchv1.ListInfo
	// Previous is the version the hub held before, if any.
	Previous *veilmatchv1.ListInfo
	// Resumed is true when an interrupted upload was continued;
	// BatchesSkipped counts batches the hub already held.
	Resumed        bool
	BatchesSkipped int
	// Unchanged is true when the hub already held exactly this list.
	Unchanged bool
	// KeyServersSkipped are the key servers of a threshold key left out,
	// and why.
	KeyServersSkipped []SkippedServer
}

// ErrNoRows reports a file without a single acceptable row.
var ErrNoRows = errors.New("client: no valid rows to publish")

// GuardError reports a republish refused because it would shrink the list
// or reject rows beyond the guard; nothing was sent.
type GuardError struct {
	List              string
	Current, Accepted uint64
	Rows, Rejected    int
	Reasons           []string
}

// Error implements error.
func (e *GuardError) Error() string {
	return fmt.Sprintf("republish of list %s refused: %s; the list at the hub is unchanged", e.List, strings.Join(e.Reasons, "; "))
}

// check returns a *GuardError if replacing a list of current entries with
// the file of rep breaks g.
func (g Guard) check(list string, current uint64, rep normalize.Report) error {
	e := &GuardError{List: list, Current: current, Accepted: uint64(rep.Accepted), Rows: rep.Rows, Rejected: len(rep.Rejected)}
	if current > 0 && e.Accepted < current {
		if shrink := float64(current-e.Accepted) / float64(current); shrink > g.MaxShrink {
			e.Reasons = append(e.Reasons, fmt.Sprintf("it would shrink the list from %d to %d entries (%.0f%%, more than %.0f%%)",
				current, e.Accepted, 100*shrink, 100*g.MaxShrink))
		}
	}
	if rep.Rows > 0 {
		if rej := float64(e.Rejected) / float64(rep.Rows); rej > g.MaxRejected {
			e.Reasons = append(e.Reasons, fmt.Sprintf("%d of %d rows were rejected (%.0f%%, more than %.0f%%)",
				e.Rejected, rep.Rows, 100*rej, 100*g.MaxRejected))
		}
	}
	if len(e.Reasons) > 0 {
		return e
	}
	return nil
}

// Publish normalizes the CSV in r, turns every accepted row into a token and
// replaces the list's contents at the hub. Rejected rows are in the result's
// report; they never stop the valid rows, but a republish that rejects or
// drops too much is refused (see Guard). A publish that was interrupted
// resumes when run again with the same file and options: batches the hub
// already holds are neither evaluated again nor re-sent. The rows behind
// the new version replace those of the old one on this machine only once
// the hub confirms the commit.
func (c *Client) Publish(ctx context.Context, r io.Reader, o PublishOptions) (PublishResult, error) {
	var res PublishResult
	if err := c.needHub(); err != nil {
		return res, err
	}
	if !ValidListName(o.List) {
		return res, fmt.Errorf("list name %q: use 1-128 letters, digits, '.', '_' or '-'", o.List)
	}
	if o.Category == "" {
		return res, errors.New("a list category is required (for example suspect, victim, missing_person, ad_contact)")
	}
	if err := c.checkList(ctx, o); err != nil {
		return res, err
	}
	rows, rep, err := readRows(r, o)
	res.Report = rep
	if err != nil {
		return res, err
	}
	if res.Previous, err = c.list(ctx, o.List); err != nil {
		return res, err
	}
	ks, err := c.newSession(ctx)
	if err != nil {
		return res, err
	}
	meta, next, values := newVersion(o, ks.KeyID(), rows)
	local, held, err := c.resumePlan(ctx, o.List, next, &res)
	if err != nil || res.Unchanged {
		return res, err
	}
	if res.Previous != nil && !o.Force {
		if err := o.guard().check(o.List, res.Previous.GetEntries(), rep); err != nil {
			return res, err
		}
	}
	if o.DryRun {
		res.List = meta
		return res, nil
	}
	// The pending version is recorded before anything is sent, so an
	// interruption at any point can resume.
	local.Pending = next
	if err := c.state.saveList(local); err != nil {
		return res, err
	}
	err = c.upload(ctx, ks, meta, next, values, held, &res)
	res.KeyServersSkipped = ks.Skipped()
	return res, err
}

// guard returns the republish guard o asks for, DefaultGuard if none.
func (o PublishOptions) guard() Guard {
	if o.Guard != nil {
		return *o.Guard
	}
	return DefaultGuard
}

// newVersion describes the list version rows make under key keyID: the
// metadata sent to the hub, the version kept locally (with its digest, to
// recognize an unchanged or interrupted publication), and the values to
// blind in row order.
func newVersion(o PublishOptions, keyID string, rows []normalize.Row) (*veilmatchv1.ListInfo, *localVersion, []string) {
	values := make([]string, len(rows))
	entries := make([]localEntry, len(rows))
	for i, row := range rows {
		values[i] = row.Value
		entries[i] = localEntry{Line: row.Line, Value: row.Value, Label: row.Label}
	}
	kind := o.Kind.ListKind()
	meta := &veilmatchv1.ListInfo{
		Name:          o.List,
		Kind:          kind,
		Category:      o.Category,
		Sharing:       &veilmatchv1.Sharing{VictimConsentRoles: o.Sharing.VictimConsentRoles, NgoVisible: o.Sharing.NGOVisible},
		Normalization: o.Normalize.Metadata(o.Kind),
		KeyId:         keyID,
		Entries:       uint64(len(values)),
	}
	if !o.ExpiresAt.IsZero() {
		meta.ExpiresAt = timestamppb.New(o.ExpiresAt)
	}
	parts := []any{o.List, o.Kind, o.Category, keyID, o.ExpiresAt.Unix(), o.Sharing, meta.Normalization, values}
	if o.Kind == normalize.Image {
		// The paths shown for the hashes are part of the version: a
		// renamed file is published again, to keep them right.
		labels := make([]string, len(rows))
		for i, row := range rows {
			labels[i] = row.Label
		}
		parts = append(parts, labels)
	}
	dig := digest(parts...)
	return meta, &localVersion{Kind: kind, KeyID: keyID, Digest: dig, Entries: entries}, values
}

// checkList checks the list's kind, category and consent roles against the
// hub's vocabulary, before anything is read or blinded.
func (c *Client) checkList(ctx context.Context, o PublishOptions) error {
	v, err := c.Vocabulary(ctx)
	if err != nil {
		return err
	}
	if err := v.check("identifier kind", o.Kind.ListKind(), v.Kinds); err != nil {
		return err
	}
	if err := v.check("list category", o.Category, v.Categories); err != nil {
		return err
	}
	for _, role := range o.Sharing.VictimConsentRoles {
		if err := v.check("role", role, v.Roles); err != nil {
			return err
		}
	}
	return nil
}

// readRows normalizes the CSV in r; a file without one acceptable row is
// ErrNoRows.
func readRows(r io.Reader, o PublishOptions) ([]normalize.Row, normalize.Report, error) {
	var rows []normalize.Row
	rep, err := normalize.ReadCSV(r, o.Column, o.Kind, o.Normalize, func(row normalize.Row) error {
		rows = append(rows, row)
		return nil
	})
	if err == nil && len(rows) == 0 {
		err = ErrNoRows
	}
	return rows, rep, err
}

// list returns the agency's list name as the hub holds it, or nil.
func (c *Client) list(ctx context.Context, name string) (*veilmatchv1.ListInfo, error) {
	lists, err := c.Lists(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(lists, func(l *veilmatchv1.ListInfo) bool { return l.GetName() == name })
	if i < 0 {
		return nil, nil
	}
	return lists[i], nil
}

// resumePlan gives next its upload id: that of the same content already
// uploaded, whole (the hub holds exactly this list: res.Unchanged, and next
// is recorded as current) or in part (the batches the hub holds are
// returned), or a new one. It returns the list's local state.
func (c *Client) resumePlan(ctx context.Context, list string, next *localVersion, res *PublishResult) (*localList, map[uint64]bool, error) {
	local, err := c.state.loadList(list)
	if err != nil {
		local = &localList{Name: list}
	}
	held := map[uint64]bool{}
	var same *localVersion
	for _, v := range []*localVersion{local.Pending, local.Current} {
		if v != nil && v.Digest == next.Digest {
			same = v
			break
		}
	}
	next.UploadID = newUploadID()
	if same != nil {
		next.UploadID = same.UploadID
		st, err := c.hub.GetUploadStatus(ctx, &veilmatchv1.GetUploadStatusRequest{List: list, UploadId: same.UploadID})
		if err != nil {
			return nil, nil, fmt.Errorf("upload status of list %s: %w", list, err)
		}
		if st.GetCommitted() {
			local.Current, local.Pending = next, nil
			res.Unchanged, res.List = true, res.Previous
			return local, nil, c.state.saveList(local)
		}
		for _, s := range st.GetSequences() {
			held[s] = true
		}
		res.Resumed = len(held) > 0
	}
	return local, held, nil
}

// upload streams next's batches that the hub does not hold, then commits;
// once the hub confirms, next becomes the list's current version here.
func (c *Client) upload(ctx context.Context, ks *session, meta *veilmatchv1.ListInfo, next *localVersion, values []string, held map[uint64]bool, res *PublishResult) error {
	list := meta.GetName()
	per, perRow := c.rowsPerBatch(next.Kind), tokensPerRow(next.Kind)
	nBatches := (len(values) + per - 1) / per
	var todo []int
	for s := range nBatches {
		if !held[uint64(s)] {
			todo = append(todo, s)
		}
	}
	res.BatchesSkipped = nBatches - len(todo)

	stream, err := c.hub.Publish(ctx)
	if err != nil {
		return fmt.Errorf("publish list %s: %w", list, err)
	}
	if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Begin{Begin: &veilmatchv1.PublishBegin{List: meta, UploadId: next.UploadID}}}); err != nil {
		return c.streamError(stream, list, err)
	}
	p := &progress{c: c, what: "publish " + list, total: len(values)}
	if res.BatchesSkipped > 0 {
		p.add(min(res.BatchesSkipped*per, len(values)))
	}
	err = c.tokenize(ctx, ks, next.Kind, next.Entries, todo, func(b batchResult) error {
		es := make([]*veilmatchv1.Entry, len(b.toks))
		for i, t := range b.toks {
			es[i] = &veilmatchv1.Entry{Token: t.Bytes(), EntryRef: uint64(b.seq*per + i/perRow)}
		}
		if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Batch{Batch: &veilmatchv1.PublishBatch{Sequence: uint64(b.seq), Entries: es}}}); err != nil {
			return c.streamError(stream, list, err)
		}
		p.add(len(b.toks) / perRow)
		return nil
	})
	if err != nil {
		stream.CloseSend()
		return err
	}
	commit := &veilmatchv1.PublishCommit{TotalBatches: uint64(nBatches), TotalEntries: uint64(len(values) * perRow)}
	if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Commit{Commit: commit}}); err != nil {
		return c.streamError(stream, list, err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("publish list %s: %w", list, err)
	}
	if !resp.GetCommitted() {
		return fmt.Errorf("publish list %s: the hub did not commit the upload", list)
	}
	res.List = resp.GetList()
	return c.state.saveList(&localList{Name: list, Current: next})
}

// streamError turns a failed Send into the server's reason: gRPC reports
// io.EOF on Send and the status on CloseAndRecv.
func (c *Client) streamError(stream veilmatchv1.HubService_PublishClient, list string, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.CloseAndRecv()
	}
	return fmt.Errorf("publish list %s: %w", list, err)
}

// Lists returns the agency's lists at the hub, by name.
func (c *Client) Lists(ctx context.Context) ([]*veilmatchv1.ListInfo, error) {
	if err := c.needHub(); err != nil {
		return nil, err
	}
	resp, err := c.hub.ListLists(ctx, &veilmatchv1.ListListsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list lists: %w", err)
	}
	lists := resp.GetLists()
	slices.SortFunc(lists, func(a, b *veilmatchv1.ListInfo) int { return strings.Compare(a.GetName(), b.GetName()) })
	return lists, nil
}

// Delete erases one of the agency's lists at the hub, and its local state.
func (c *Client) Delete(ctx context.Context, list string) (uint64, error) {
	if err := c.needHub(); err != nil {
		return 0, err
	}
	resp, err := c.hub.DeleteList(ctx, &veilmatchv1.DeleteListRequest{List: list})
	if err != nil {
		return 0, fmt.Errorf("delete list %s: %w", list, err)
	}
	if err := c.state.removeList(c.localName(list)); err != nil {
		return resp.GetDeletedEntries(), fmt.Errorf("remove local state of list %s: %w", list, err)
	}
	return resp.GetDeletedEntries(), nil
}
