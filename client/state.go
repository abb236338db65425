package client

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// ErrKeyChanged reports a key server that presented a different public key
// for a key id already pinned: a sign that it may be tagging this agency.
var ErrKeyChanged = errors.New("client: key server public key changed")

// ErrKeyNotVouched reports a key server that presented a new key id that no
// key the agency trusts endorses: a rogue or misconfigured key server, or a
// rotation its operator did not endorse. Lists published under such a key
// would match nothing.
var ErrKeyNotVouched = errors.New("client: key server key not vouched for")

// ErrKeySetRolledBack reports key servers that present an older sharing
// of a threshold key than the agency has used: shares that a resharing
// retired, which must not evaluate any more.
var ErrKeySetRolledBack = errors.New("client: key set older than one already used")

// stateDir is the agency-side state: pinned keys and list entries.
type stateDir struct {
	dir string
	mu  sync.Mutex
	// rows are the rows files decoded last (at most cachedRowsFiles), by
	// path, each with what stat said of it: a watch or a client asked
	// again about the same list does not read and check megabytes per
	// answer. An upload's rows file is written once; a file stat finds
	// changed in any way is read again.
	rowsMu sync.Mutex
	rows   map[string]cachedRows
}

// cachedRows is a rows file as decoded, and stat's answer about it then.
type cachedRows struct {
	info os.FileInfo
	file *rowsFile
}

// cachedRowsFiles is how many decoded rows files a stateDir keeps.
const cachedRowsFiles = 2

var listNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidListName reports whether name is an acceptable list name.
func ValidListName(name string) bool { return listNameRE.MatchString(name) }

func openState(dir string) (*stateDir, error) {
	if err := os.MkdirAll(filepath.Join(dir, "lists"), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &stateDir{dir: dir}, nil
}

// writeJSON writes v to path atomically and durably, with mode 0600.
func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// readJSON reads the JSON file at path into v.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// pins is the agency's trust in key server keys: the keys it trusts, by
// key id, as pinned-keys.json keeps them (hex public keys).
type pins map[string]string

func (s *stateDir) pinsPath() string { return filepath.Join(s.dir, "pinned-keys.json") }

// keySetPin is what the agency remembers of the newest key set it used
// for a key id.
type keySetPin struct {
	Generation uint64 `json:"generation"`
	// Shares is the hash of the share keys and threshold, so that the same
	// generation cannot come back with other share keys.
	Shares string `json:"shares"`
}

// keySetHash identifies a key set's threshold and share keys.
func keySetHash(set oprf.KeySet) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d/%d/", set.Threshold, len(set.Shares))
	for _, sh := range set.Shares {
		h.Write(sh.PublicKey)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkGeneration pins the key set: it refuses one older than the newest
// generation of the same key the agency has used, or that generation with
// other share keys, and records a newer one.
func (s *stateDir) checkGeneration(set oprf.KeySet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, "key-sets.json")
	seen := map[string]keySetPin{}
	if err := readJSON(path, &seen); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read pinned key sets %s: %w", path, err)
	}
	pin, now := seen[set.KeyID], keySetPin{Generation: set.Generation, Shares: keySetHash(set)}
	switch {
	case set.Generation < pin.Generation:
		return fmt.Errorf("%w: the key servers hold shares of generation %d of key %s, but generation %d has been used here since a resharing; their shares are retired (%s)",
			ErrKeySetRolledBack, set.Generation, set.KeyID, pin.Generation, path)
	case set.Generation == pin.Generation && pin.Shares != now.Shares:
		return fmt.Errorf("%w: generation %d of key %s comes with other share keys than when it was pinned in %s",
			ErrKeyChanged, set.Generation, set.KeyID, path)
	case set.Generation == pin.Generation:
		return nil
	}
	seen[set.KeyID] = now
	if err := writeJSON(path, seen); err != nil {
		return fmt.Errorf("pin key set: %w", err)
	}
	return nil
}

// trusted returns the configured keys and the pinned ones.
func (c *Client) trusted(p pins) []oprf.PublicKey {
	out := slices.Clone(c.cfg.PinnedKeys)
	for id, h := range p {
		if b, err := hex.DecodeString(h); err == nil {
			out = append(out, oprf.PublicKey{KeyID: id, Bytes: b})
		}
	}
	return out
}

// trustedKeys returns the configured and pinned keys.
func (c *Client) trustedKeys() []oprf.PublicKey {
	s := c.state
	s.mu.Lock()
	defer s.mu.Unlock()
	p := pins{}
	_ = readJSON(s.pinsPath(), &p) // pin reports a bad file
	return c.trusted(p)
}

// pin decides whether to trust the key server's current key pub. A key
// already trusted (configured or pinned) is; the same key id with another
// key is refused (ErrKeyChanged); a new key id is trusted only if a chain
// of endorsements leads to it from a key already trusted, or, with nothing
// trusted yet and no configured keys, on first use. Keys newly trusted are
// pinned in the state directory.
func (c *Client) pin(pub oprf.PublicKey, chain []oprf.Endorsement) error {
	s := c.state
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.pinsPath()
	p := pins{}
	if err := readJSON(path, &p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read pinned keys %s: %w", path, err)
	}
	trusted := c.trusted(p)
	for _, k := range trusted {
		if k.KeyID != pub.KeyID {
			continue
		}
		if subtle.ConstantTimeCompare(k.Bytes, pub.Bytes) != 1 {
			return fmt.Errorf("%w for key id %q (pinned in %s or configured)", ErrKeyChanged, pub.KeyID, path)
		}
		return nil
	}
	newly := []oprf.PublicKey{pub}
	how := "first use"
	if len(trusted) > 0 {
		var err error
		if newly, err = oprf.VerifyChain(trusted, chain, pub); err != nil {
			return fmt.Errorf("%w: the key server presents a new key %q that no key you trust endorses (%w); nothing was sent",
				ErrKeyNotVouched, pub.KeyID, err)
		}
		how = "endorsed by a key you trust"
	}
	for _, k := range newly {
		p[k.KeyID] = hex.EncodeToString(k.Bytes)
	}
	if err := writeJSON(path, p); err != nil {
		return fmt.Errorf("pin key %s: %w", pub.KeyID, err)
	}
	fmt.Fprintf(c.cfg.Progress, "pinned key server key %s (%s)\n", pub.KeyID, how)
	return nil
}

// localEntry maps an entry reference back to the agency's own row.
type localEntry struct {
	Line  int    `json:"line"`
	Value string `json:"value"`
	// Label is what the agency knows the value by, if not the value
	// itself: an image's path.
	Label string `json:"label,omitempty"`
}

// shown is what the agency is shown of the entry: its label, else its
// value.
func (e localEntry) shown() string {
	if e.Label != "" {
		return e.Label
	}
	return e.Value
}

// localVersion is one upload of a list: its settings and, by entry
// reference, the rows behind it.
type localVersion struct {
	Kind     string `json:"kind"`
	KeyID    string `json:"key_id"`
	UploadID string `json:"upload_id"`
	Digest   string `json:"digest"`
	// Entries are the rows, index = entry_ref. They are kept in a rows
	// file (see rowsPath); state written before rows files holds them
	// here.
	Entries []localEntry `json:"entries,omitempty"`
	// file is the rows file of a version read from disk, if not Entries.
	file *rowsFile
}

// rows returns the version's rows by entry reference.
func (v *localVersion) rows() rowTable {
	if v.file != nil {
		return v.file
	}
	return entrySlice(v.Entries)
}

// localList is what the agency keeps about one published list: the version
// the hub confirmed it committed, and an upload not confirmed yet (begun,
// interrupted, or failed). Matches map to rows only through the version the
// hub says it answered about.
type localList struct {
	Name    string        `json:"name"`
	Current *localVersion `json:"current,omitempty"`
	Pending *localVersion `json:"pending,omitempty"`
}

// legacyList is the first format of a list's state: one version and
// whether the hub had confirmed it.
type legacyList struct {
	localVersion
	Committed bool `json:"committed"`
}

func (s *stateDir) listPath(name string) string {
	return filepath.Join(s.dir, "lists", name+".json")
}

func (s *stateDir) loadList(name string) (*localList, error) {
	data, err := os.ReadFile(s.listPath(name))
	if err != nil {
		return nil, err
	}
	l := &localList{}
	if err := json.Unmarshal(data, l); err != nil {
		return nil, fmt.Errorf("local state of list %s: %w", name, err)
	}
	if l.Current == nil && l.Pending == nil {
		var old legacyList
		if err := json.Unmarshal(data, &old); err == nil && old.UploadID != "" {
			v := old.localVersion
			if old.Committed {
				l.Current = &v
			} else {
				l.Pending = &v
			}
		}
	}
	l.Name = name
	if err := s.loadRows(l); err != nil {
		return nil, fmt.Errorf("local state of list %s: %w", name, err)
	}
	return l, nil
}

// saveList writes the rows of l's versions that are not on disk yet, then
// l's JSON state naming them, then removes the rows of versions l no
// longer holds.
func (s *stateDir) saveList(l *localList) error {
	if err := s.saveRows(l); err != nil {
		return fmt.Errorf("save local state of list %s: %w", l.Name, err)
	}
	meta := *l
	for _, v := range []**localVersion{&meta.Current, &meta.Pending} {
		if *v != nil {
			c := **v
			c.Entries = nil
			*v = &c
		}
	}
	if err := writeJSON(s.listPath(l.Name), meta); err != nil {
		return fmt.Errorf("save local state of list %s: %w", l.Name, err)
	}
	if err := s.pruneRows(l); err != nil {
		return fmt.Errorf("save local state of list %s: %w", l.Name, err)
	}
	return nil
}

// version returns the version of upload id, promoting the pending upload
// to current when the hub says it holds it (its commit was confirmed to
// the hub but not recorded here).
func (l *localList) version(id string) (*localVersion, bool) {
	switch {
	case l.Current != nil && l.Current.UploadID == id:
		return l.Current, false
	case l.Pending != nil && l.Pending.UploadID == id:
		l.Current, l.Pending = l.Pending, nil
		return l.Current, true
	}
	return nil, false
}

// uploads names the uploads whose rows l holds, for messages.
func (l *localList) uploads() string {
	var ids []string
	for _, v := range []*localVersion{l.Current, l.Pending} {
		if v != nil {
			ids = append(ids, "upload "+v.UploadID)
		}
	}
	if len(ids) == 0 {
		return "no upload"
	}
	return strings.Join(ids, " and ")
}

func (s *stateDir) removeList(name string) error {
	err := os.Remove(s.listPath(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(filepath.Dir(s.rowsPath(name, "x")))
}

// digest identifies the content and settings of an upload, so a rerun of an
// interrupted publish resumes the same upload.
func digest(parts ...any) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range parts {
		_ = enc.Encode(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
