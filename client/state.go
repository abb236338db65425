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
	"sync"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// ErrKeyChanged reports a key server that presented a different public key
// for a key id already pinned: a sign that it may be tagging this agency.
var ErrKeyChanged = errors.New("client: key server public key changed")

// stateDir is the agency-side state: pinned keys and list entries.
type stateDir struct {
	dir string
	mu  sync.Mutex
}

var listNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidListName reports whether name is an acceptable list name.
func ValidListName(name string) bool { return listNameRE.MatchString(name) }

func openState(dir string) (*stateDir, error) {
	if err := os.MkdirAll(filepath.Join(dir, "lists"), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &stateDir{dir: dir}, nil
}

// writeJSON writes v to path atomically with mode 0600.
func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// pin checks pub against the configured or stored pin for its key id, and
// stores it on first use.
func (c *Client) pin(pub oprf.PublicKey) error {
	if p := c.cfg.PinnedKey; p != nil {
		if p.KeyID != pub.KeyID || subtle.ConstantTimeCompare(p.Bytes, pub.Bytes) != 1 {
			return fmt.Errorf("%w: key server presents key %q, configuration pins %q", ErrKeyChanged, pub.KeyID, p.KeyID)
		}
		return nil
	}
	s := c.state
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, "pinned-keys.json")
	pins := map[string]string{}
	if err := readJSON(path, &pins); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read pinned keys %s: %w", path, err)
	}
	got := hex.EncodeToString(pub.Bytes)
	if old, ok := pins[pub.KeyID]; ok {
		if subtle.ConstantTimeCompare([]byte(old), []byte(got)) != 1 {
			return fmt.Errorf("%w for key id %q (pinned in %s)", ErrKeyChanged, pub.KeyID, path)
		}
		return nil
	}
	pins[pub.KeyID] = got
	if err := writeJSON(path, pins); err != nil {
		return fmt.Errorf("pin key %s: %w", pub.KeyID, err)
	}
	fmt.Fprintf(c.cfg.Progress, "pinned key server key %s (first use)\n", pub.KeyID)
	return nil
}

// localEntry maps an entry reference back to the agency's own row.
type localEntry struct {
	Line  int    `json:"line"`
	Value string `json:"value"`
}

// localList is what the agency keeps about one published list.
type localList struct {
	Name      string       `json:"name"`
	Kind      string       `json:"kind"`
	KeyID     string       `json:"key_id"`
	UploadID  string       `json:"upload_id"`
	Digest    string       `json:"digest"`
	Committed bool         `json:"committed"`
	Entries   []localEntry `json:"entries"` // index = entry_ref
}

func (s *stateDir) listPath(name string) string {
	return filepath.Join(s.dir, "lists", name+".json")
}

func (s *stateDir) loadList(name string) (*localList, error) {
	var l localList
	if err := readJSON(s.listPath(name), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

func (s *stateDir) saveList(l *localList) error {
	if err := writeJSON(s.listPath(l.Name), l); err != nil {
		return fmt.Errorf("save local state of list %s: %w", l.Name, err)
	}
	return nil
}

func (s *stateDir) removeList(name string) error {
	err := os.Remove(s.listPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
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
