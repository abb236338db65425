package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
}

// PublishResult reports what a publish did.
type PublishResult struct {
	// Report lists every accepted, warned and rejected row.
	Report normalize.Report
	// List is the committed list as the hub describes it.
	List *veilmatchv1.ListInfo
	// Resumed is true when an interrupted upload was continued;
	// BatchesSkipped counts batches the hub already held.
	Resumed        bool
	BatchesSkipped int
	// Unchanged is true when the hub already held exactly this list.
	Unchanged bool
}

// ErrNoRows reports a file without a single acceptable row.
var ErrNoRows = errors.New("client: no valid rows to publish")

// Publish normalizes the CSV in r, turns every accepted row into a token and
// replaces the list's contents at the hub. Rejected rows are in the result's
// report; they never stop the valid rows. A publish that was interrupted
// resumes when run again with the same file and options: batches the hub
// already holds are neither evaluated again nor re-sent.
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
	var rows []normalize.Row
	rep, err := normalize.ReadCSV(r, o.Column, o.Kind, o.Normalize, func(row normalize.Row) error {
		rows = append(rows, row)
		return nil
	})
	res.Report = rep
	if err != nil {
		return res, err
	}
	if len(rows) == 0 {
		return res, ErrNoRows
	}
	oc, err := c.oprfClient(ctx)
	if err != nil {
		return res, err
	}
	values := make([]string, len(rows))
	entries := make([]localEntry, len(rows))
	for i, row := range rows {
		values[i] = row.Value
		entries[i] = localEntry{Line: row.Line, Value: row.Value}
	}
	meta := &veilmatchv1.ListInfo{
		Name:          o.List,
		Kind:          string(o.Kind),
		Category:      o.Category,
		KeyId:         oc.KeyID(),
		Sharing:       &veilmatchv1.Sharing{VictimConsentRoles: o.Sharing.VictimConsentRoles, NgoVisible: o.Sharing.NGOVisible},
		Normalization: o.Normalize.Metadata(o.Kind),
	}
	if !o.ExpiresAt.IsZero() {
		meta.ExpiresAt = timestamppb.New(o.ExpiresAt)
	}
	dig := digest(o.List, o.Kind, o.Category, oc.KeyID(), o.ExpiresAt.Unix(), o.Sharing, meta.Normalization, values)

	local := &localList{Name: o.List, Kind: string(o.Kind), KeyID: oc.KeyID(), Digest: dig, Entries: entries}
	nBatches := (len(values) + c.cfg.BatchSize - 1) / c.cfg.BatchSize
	held := map[uint64]bool{}
	if prev, err := c.state.loadList(o.List); err == nil && prev.Digest == dig {
		local.UploadID = prev.UploadID
		st, err := c.hub.GetUploadStatus(ctx, &veilmatchv1.GetUploadStatusRequest{List: o.List, UploadId: prev.UploadID})
		switch {
		case err != nil:
			return res, fmt.Errorf("upload status of list %s: %w", o.List, err)
		case st.GetCommitted():
			res.Unchanged = true
		default:
			for _, s := range st.GetSequences() {
				held[s] = true
			}
			res.Resumed = len(held) > 0
		}
	} else {
		local.UploadID = newUploadID()
	}
	if res.Unchanged {
		local.Committed = true
		if err := c.state.saveList(local); err != nil {
			return res, err
		}
		lists, err := c.Lists(ctx)
		if err != nil {
			return res, err
		}
		for _, l := range lists {
			if l.GetName() == o.List {
				res.List = l
			}
		}
		return res, nil
	}
	// The local state is written before anything is sent, so an
	// interruption at any point can resume.
	if err := c.state.saveList(local); err != nil {
		return res, err
	}
	var todo []int
	for s := range nBatches {
		if !held[uint64(s)] {
			todo = append(todo, s)
		}
	}
	res.BatchesSkipped = nBatches - len(todo)

	stream, err := c.hub.Publish(ctx)
	if err != nil {
		return res, fmt.Errorf("publish list %s: %w", o.List, err)
	}
	if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Begin{Begin: &veilmatchv1.PublishBegin{List: meta, UploadId: local.UploadID}}}); err != nil {
		return res, c.streamError(stream, o.List, err)
	}
	p := &progress{c: c, what: "publish " + o.List, total: len(values)}
	if res.BatchesSkipped > 0 {
		p.add(min(res.BatchesSkipped*c.cfg.BatchSize, len(values)))
	}
	err = c.tokenize(ctx, oc, string(o.Kind), values, todo, func(b batchResult) error {
		es := make([]*veilmatchv1.Entry, len(b.toks))
		for i, t := range b.toks {
			es[i] = &veilmatchv1.Entry{Token: t.Bytes(), EntryRef: uint64(b.seq*c.cfg.BatchSize + i)}
		}
		if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Batch{Batch: &veilmatchv1.PublishBatch{Sequence: uint64(b.seq), Entries: es}}}); err != nil {
			return c.streamError(stream, o.List, err)
		}
		p.add(len(b.toks))
		return nil
	})
	if err != nil {
		stream.CloseSend()
		return res, err
	}
	commit := &veilmatchv1.PublishCommit{TotalBatches: uint64(nBatches), TotalEntries: uint64(len(values))}
	if err := stream.Send(&veilmatchv1.PublishRequest{Msg: &veilmatchv1.PublishRequest_Commit{Commit: commit}}); err != nil {
		return res, c.streamError(stream, o.List, err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return res, fmt.Errorf("publish list %s: %w", o.List, err)
	}
	if !resp.GetCommitted() {
		return res, fmt.Errorf("publish list %s: the hub did not commit the upload", o.List)
	}
	local.Committed = true
	if err := c.state.saveList(local); err != nil {
		return res, err
	}
	res.List = resp.GetList()
	return res, nil
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
	slices.SortFunc(lists, func(a, b *veilmatchv1.ListInfo) int {
		switch {
		case a.GetName() < b.GetName():
			return -1
		case a.GetName() > b.GetName():
			return 1
		}
		return 0
	})
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
