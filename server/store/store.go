// Package store defines the hub's storage layer: lists of tokens owned by
// agencies, the resumable uploads that publish them, and the joins that find
// tokens shared across lists.
//
// A token is a 32-byte pseudonym (the first 32 bytes of an RFC 9497 Finalize
// output); the store never sees raw identifiers. Tokens made under different
// key ids never match. Implementations must never put token bytes into
// errors, logs or String methods.
//
// Implementations live in subpackages (sqlite, and later PostgreSQL) and
// prove their conformance with the suite in package storetest.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/veilmatch/veilmatch/server/audit"
)

// Errors returned by every Store implementation, wrapped with the operation
// that failed. Callers test for them with errors.Is.
var (
	// ErrNotFound reports that a list, list version or upload does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports a request that contradicts what the store already
	// holds: a resumed upload with different metadata, a batch sequence number
	// already held with different content, or a superseded upload.
	ErrConflict = errors.New("store: conflict")
	// ErrIncomplete reports a commit whose upload does not match the declared
	// totals; the wrapping message says which batches or how many entries are
	// missing.
	ErrIncomplete = errors.New("store: upload incomplete")
	// ErrInvalid reports an argument the store cannot accept, such as a token
	// that is not exactly TokenSize bytes or an empty owner; the wrapping
	// message names the item at fault but never contains token bytes.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrExhausted reports a charge that would take a metered use above its
	// limit; nothing was changed.
	ErrExhausted = errors.New("store: limit exhausted")
)

// TokenSize is the length in bytes of every stored token.
const TokenSize = 32

// Sharing holds a list's sharing flags, which the hub passes to policy.
type Sharing struct {
	// VictimConsentRoles lists the agency roles the victims consented to
	// share with.
	VictimConsentRoles []string
	// NGOVisible allows NGOs to see matches against the list.
	NGOVisible bool
}

// List is the metadata of one committed version of an agency's list.
type List struct {
	// ID is assigned by the store and is new for every committed version of
	// a list; it is never reused.
	ID int64
	// Owner is the agency id that owns the list.
	Owner string
	// Name is unique among the owner's lists.
	Name string
	// Kind is the identifier kind of the tokens (phone, email, pdq, …).
	Kind string
	// Category says what the list holds (suspect, victim, …).
	Category string
	// Jurisdiction is the owner's jurisdiction for the list.
	Jurisdiction string
	// KeyID is the OPRF key id (epoch) the tokens were made under.
	KeyID string
	// ExpiresAt is the end of the list's retention; zero means never.
	ExpiresAt time.Time
	// Sharing holds the list's sharing flags.
	Sharing Sharing
	// Normalization records the client's normalization rules.
	Normalization map[string]string
	// Entries is the number of entries committed.
	Entries uint64
	// CommittedAt is when the version was committed.
	CommittedAt time.Time
	// UploadID is the upload that made this version, as its owner chose it.
	UploadID string
}

// Entry is one stored token and the owner's reference to the row it came from.
type Entry struct {
	// Token is exactly TokenSize bytes.
	Token []byte
	// Ref is the owner's opaque entry reference, returned by Overlaps.
	Ref uint64
}

// Upload names a resumable upload of a new version of a list.
type Upload struct {
	// Owner is the agency id publishing the list.
	Owner string
	// List is the name of the list being published.
	List string
	// ID is chosen by the client and identifies the upload within the list.
	ID string
	// Meta is the metadata of the version to be committed. Its Owner and Name
	// must be empty or equal Owner and List; Kind and KeyID are required; ID,
	// Entries and CommittedAt are ignored.
	Meta List
}

// Store is the hub's storage. All methods are safe for concurrent use, honour
// context cancellation, and wrap errors with the operation that failed. Times
// are kept to the microsecond and returned in UTC.
type Store interface {
	// BeginUpload starts a new upload or resumes the upload with the same
	// owner, list and id. Resuming with different metadata fails with
	// ErrConflict; beginning an upload that is already the committed version
	// succeeds, and one that has been superseded by a later commit fails with
	// ErrConflict.
	BeginUpload(ctx context.Context, u Upload) error
	// PutBatch stages entries as batch seq of an upload. It is idempotent per
	// (owner, list, upload, seq): sending the same content again reports
	// duplicate and writes nothing, different content for a held seq fails
	// with ErrConflict. An unknown upload fails with ErrNotFound.
	PutBatch(ctx context.Context, owner, list, uploadID string, seq uint64, entries []Entry) (duplicate bool, err error)
	// UploadStatus reports the batch sequence numbers held for an upload, in
	// ascending order, and whether it has been committed.
	UploadStatus(ctx context.Context, owner, list, uploadID string) (seqs []uint64, committed bool, err error)
	// CommitUpload checks that batches 0..totalBatches-1, and no others, are
	// present and hold totalEntries entries (else ErrIncomplete saying what is
	// missing), then in one transaction replaces the list's previous contents
	// with the upload's entries and makes them visible. Committing the
	// upload that is already the list's committed version returns that
	// version unchanged; committing a superseded upload fails with
	// ErrConflict.
	//
	// If rec is not nil it is appended to the decision log in the same
	// transaction (see AppendDecision).
	CommitUpload(ctx context.Context, owner, list, uploadID string, totalBatches, totalEntries uint64, at time.Time, rec *audit.Record) (List, error)
	// GetList returns the committed version of the owner's list.
	GetList(ctx context.Context, owner, name string) (List, error)
	// Lists returns the owner's committed lists ordered by name.
	Lists(ctx context.Context, owner string) ([]List, error)
	// VisibleLists returns the committed lists of every owner with this kind
	// and key id, ordered by ID.
	VisibleLists(ctx context.Context, kind, keyID string) ([]List, error)
	// ExpiredLists returns the committed lists of every owner whose expiry
	// is before now, for erasure at the end of their retention.
	ExpiredLists(ctx context.Context, now time.Time) ([]List, error)
	// DeleteList erases the list: its committed tokens, its open uploads and
	// their staged tokens, and the record of its past uploads. It returns the
	// number of token entries erased, or ErrNotFound if there was nothing to
	// erase.
	//
	// If rec is not nil it is appended to the decision log in the same
	// transaction (see AppendDecision).
	DeleteList(ctx context.Context, owner, name string, rec *audit.Record) (deleted uint64, err error)
	// Overlaps joins the tokens of the committed list version listID against
	// the committed lists of other owners with the same kind and key id, and
	// calls fn once for each distinct (entryRef, counterpartyListID) pair, in
	// no particular order, from one consistent snapshot. It streams: it never
	// loads a whole table into memory, only the entry refs matching one
	// counterparty list at a time. An error from fn stops the join and is
	// returned wrapped. An unknown or superseded listID fails with
	// ErrNotFound.
	Overlaps(ctx context.Context, listID int64, fn func(entryRef uint64, counterpartyListID int64) error) error
	// Check looks tokens up in the committed lists of every owner with this
	// kind and key id, and calls fn once for each distinct (index into tokens,
	// counterpartyListID) pair, in ascending index order, from one consistent
	// snapshot. For kind token.PDQKind an entry is token.PDQTokens
	// consecutive tokens, index counts entries, and an entry matches a
	// list holding an entry it is near (token.PDQNear); tokens that are
	// not a whole number of entries fail with ErrInvalid. It is strictly
	// read-only: it stores nothing, not even temporarily.
	Check(ctx context.Context, kind, keyID string, tokens [][]byte, fn func(index int, counterpartyListID int64) error) error
	// PurgeUploads drops the uncommitted uploads begun before before, with
	// their staged entries, and returns how many it dropped.
	PurgeUploads(ctx context.Context, before time.Time) (int, error)
	// Close releases the store's resources.
	Close() error

	DecisionLog
	Disclosures
	KeyEpochs
	CheckUse
	Matches
}

// Standing matches. When a list version commits, the store joins its
// tokens against the committed lists of other owners with the same kind and
// key id and keeps every matched pair of entries (entries with an equal
// token; for kind token.PDQKind, entries whose shared tokens pass
// token.PDQNear), in both directions, in the same transaction; it appends a match event for each side (the owner of
// each list learns of the pair through its events). A later commit of
// either list (which supersedes its version), its deletion or its purge
// removes the pairs of the version erased, in the same transaction. A
// retracted entry matches nothing until the retraction is undone. Overlaps
// reads the pairs instead of joining tokens, from a summary of them per
// two list versions that the same transactions keep.
//
// Event kinds.
const (
	EventMatch      = "match"
	EventRetraction = "retraction"
)

// MatchEvent tells the owner of ListID about entry Ref of that list
// version: that it matches an entry of CounterpartyListID (EventMatch), or
// that the counterparty entry it was alerted of was retracted
// (EventRetraction).
type MatchEvent struct {
	// Cursor orders the events of the whole store: it only grows.
	Cursor             uint64
	Kind               string
	Owner              string
	ListID             int64
	List               string
	Ref                uint64
	CounterpartyListID int64
	Time               time.Time
}

// Alerted is one pair an owner was alerted of: its entry Ref of ListID
// matched CounterpartyListID.
type Alerted struct {
	ListID             int64
	Ref                uint64
	CounterpartyListID int64
}

// Retraction withdraws an entry of an owner's committed list version.
type Retraction struct {
	Owner, List string
	ListID      int64
	Ref         uint64
	Reason      string
	Time        time.Time
}

// Matches keeps the standing matches' events, the alerts delivered, and
// retractions.
type Matches interface {
	// MatchEvents returns up to limit events of owner's lists with a cursor
	// above after, in cursor order; only those of the list named list when
	// list is not empty. Events of list versions no longer committed are
	// left out.
	MatchEvents(ctx context.Context, owner, list string, after uint64, limit int) ([]MatchEvent, error)
	// AppendAlertDecision records that the owner was alerted of pairs, so
	// that a later retraction of the counterparty entry alerts it, and
	// appends rec with its owner notices (see AppendDecision), all in one
	// transaction.
	AppendAlertDecision(ctx context.Context, rec *audit.Record, notices []Notice, alerted []Alerted) (uint64, error)
	// Retract withdraws entry ref of the owner's committed version of list:
	// its pairs are removed, a retraction event goes to the owner of every
	// entry whose owner was alerted of a pair with it, and rec is appended,
	// all in one transaction. It fails with ErrNotFound if the list or the
	// entry does not exist, and ErrConflict if the entry is retracted
	// already.
	Retract(ctx context.Context, owner, list string, ref uint64, reason string, at time.Time, rec *audit.Record) (Retraction, error)
	// Retractions returns the owner's retractions in its committed lists,
	// oldest first.
	Retractions(ctx context.Context, owner string) ([]Retraction, error)
	// Unretract undoes the retraction of entry ref of the owner's committed
	// version of list: its pairs are found again, with their match events,
	// and rec is appended, in one transaction. ErrNotFound if there is no
	// such retraction.
	Unretract(ctx context.Context, owner, list string, ref uint64, at time.Time, rec *audit.Record) error
}

// Exclusive is implemented by stores that several hub processes (replicas)
// share: it runs a background job in at most one of them at a time.
type Exclusive interface {
	// RunExclusive runs fn unless another process runs the job named job
	// right now, in which case it returns false without running it.
	RunExclusive(ctx context.Context, job string, fn func(ctx context.Context) error) (ran bool, err error)
}

// KeyEpoch is an OPRF key (epoch) the key server reported serving.
type KeyEpoch struct {
	// KeyID names the epoch.
	KeyID string
	// PublicKey is the key's RFC 9497 serialization; nil for a key stored
	// before the store kept public keys.
	PublicKey []byte
}

// KeyEpochs stores the OPRF keys (epochs) the key server reports serving,
// so that a retired epoch stays retired across hub restarts and a key id
// keeps its public key.
type KeyEpochs interface {
	// KeyEpochs returns the key ids of the latest report, newest first, and
	// every key ever reported, in ascending order of key id.
	KeyEpochs(ctx context.Context) (current []string, known []KeyEpoch, err error)
	// SetKeyEpochs records current (newest first) as the served keys and
	// appends rec to the decision log in the same transaction. If current
	// equals the stored report (ids, order and public keys) it changes and
	// appends nothing and returns false. A key id stored with another
	// public key fails with ErrConflict; one stored without a public key
	// takes the reported one.
	SetKeyEpochs(ctx context.Context, current []KeyEpoch, rec *audit.Record) (changed bool, err error)
}

// CheckUse meters the entries each agency checks per UTC day, so that the
// hub can bound how much an agency learns by re-checking tokens it holds.
type CheckUse interface {
	// CheckUse returns the entries agency checked on day (YYYY-MM-DD).
	CheckUse(ctx context.Context, agency, day string) (uint64, error)
	// AppendCheckDecision adds entries to agency's use on day and appends
	// rec with its owner notices (see AppendDecision), all in one
	// transaction, unless that would take the day's use above limit: then
	// it changes nothing and fails with ErrExhausted.
	AppendCheckDecision(ctx context.Context, rec *audit.Record, notices []Notice, agency, day string, entries, limit uint64) error
}

// DecisionLog is the storage of the hub's tamper-evident decision log: an
// append-only RFC 6962 Merkle tree whose leaves are canonical audit records.
// Records are appended in the same transaction as the action they record, so
// neither can exist without the other, also across a crash.
type DecisionLog interface {
	// AppendDecision sets rec.Index to the log's size, appends the record
	// and the Merkle nodes it completes, and stores the owner notices, all
	// in one transaction. It returns the record's index.
	AppendDecision(ctx context.Context, rec *audit.Record, notices []Notice) (uint64, error)
	// AppendDecisions appends recs in order in one transaction: all of
	// them or, on error, none.
	AppendDecisions(ctx context.Context, recs []*audit.Record) error
	// LogHead returns the log's size and root hash.
	LogHead(ctx context.Context) (size uint64, root []byte, err error)
	// LogRecords returns up to limit records from index start, in order.
	LogRecords(ctx context.Context, start uint64, limit int) ([][]byte, error)
	// Nodes returns stored Merkle node hashes (audit.NodeReader).
	Nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
	// PutCheckpoint stores a signed checkpoint of the given tree size.
	PutCheckpoint(ctx context.Context, size uint64, text []byte) error
	// LatestCheckpoint returns the checkpoint of the largest size, or
	// ErrNotFound.
	LatestCheckpoint(ctx context.Context) (size uint64, text []byte, err error)
}

// Request states of a DisclosureRequest.
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestRefused  = "refused"
)

// DisclosureRequest asks the owner of a list to disclose, in full, matches
// between one of the requester's lists and it. Both lists are pinned to
// their committed versions: a republished list needs a new request. The
// requests made from one match reference form a group: the requester sees
// the group, each owner its own request.
type DisclosureRequest struct {
	ID                       string
	GroupID                  string
	Requester, RequesterList string
	RequesterListID          int64
	Owner, List              string
	ListID                   int64
	// EntryRefs are the requester's entries concerned; empty means every
	// match between the two list versions.
	EntryRefs []uint64
	// Entries is how many of the requester's entries match this list;
	// Requested is how many the answer behind the group's reference showed
	// the requester (the same for every request of the group).
	Entries, Requested       uint64
	Reason, Purpose, CaseRef string
	Status                   string
	CreatedAt, AnsweredAt    time.Time
	Note                     string
}

// Notice tells an owner that matches of its list were disclosed in full.
type Notice struct {
	Owner, List string
	// Action is what disclosed them: overlaps or check (a check has no
	// RequesterList).
	Action                   string
	Requester, RequesterList string
	Entries                  uint64
	Purpose, CaseRef         string
	Time                     time.Time
	DecisionID               string
}

// Disclosures stores two-step disclosure requests and owner notices.
type Disclosures interface {
	// CreateDisclosureRequests stores pending requests and appends rec to
	// the decision log in the same transaction. If a request is still
	// pending for the same requester list version, list version, entries,
	// purpose and case reference it stores nothing and fails with
	// ErrConflict naming that request's group.
	CreateDisclosureRequests(ctx context.Context, reqs []DisclosureRequest, rec *audit.Record) error
	// DisclosureRequests lists requests against owner's lists (owner set)
	// or made by requester (requester set), oldest first; pending only
	// unless all.
	DisclosureRequests(ctx context.Context, owner, requester string, all bool) ([]DisclosureRequest, error)
	// AnswerDisclosureRequest approves or refuses a pending request against
	// one of owner's lists and appends rec in the same transaction. A
	// request of another owner is ErrNotFound; an answered one ErrConflict.
	AnswerDisclosureRequest(ctx context.Context, id, owner string, approve bool, note string, at time.Time, rec *audit.Record) (DisclosureRequest, error)
	// Grants returns the approved requests made for a requester list version.
	Grants(ctx context.Context, requesterListID int64) ([]DisclosureRequest, error)
	// Notices returns the full disclosures of owner's lists, oldest first.
	Notices(ctx context.Context, owner string) ([]Notice, error)
}
