// Package client is the agency side of veilmatch: it normalizes an agency's
// identifiers, blinds them, has the key server evaluate the OPRF, verifies
// every proof against the pinned key, and publishes or checks the resulting
// tokens at the hub. Raw identifiers never leave the agency: what it needs to
// map a match back to its own rows stays in a local state directory.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// DefaultBatchSize is the number of identifiers blinded, evaluated and
// uploaded together.
const DefaultBatchSize = 1024

// Config configures a Client.
type Config struct {
	// Agency is the agency id in the client certificate, for messages.
	Agency string
	// Hub and KeyServer are the services' addresses.
	Hub, KeyServer string
	// KeyServers, if set, replaces KeyServer: the addresses of the key
	// servers holding the shares of a threshold key, in the order the
	// client prefers them. One address keeps the single-key protocol.
	KeyServers []string
	// HubID and KeyServerID are the SPIFFE server ids the services must
	// present (default "hub" and "keyserver"), so neither can stand in for
	// the other. Key servers may also present KeyServerID-<name>, as the
	// servers of a threshold key do.
	HubID, KeyServerID string
	// TLS is the agency's mTLS client configuration.
	TLS *tls.Config
	// StateDir holds the agency-side state: pinned keys and, per list, the
	// rows behind each entry reference. It contains raw identifiers: keep it
	// on the agency's own systems.
	StateDir string
	// PinnedKeys, if set, are the key server public keys the agency's
	// operator trusts. Otherwise the first key seen is trusted on first use.
	// Either way, a new key id is trusted only when a key already trusted
	// endorses it (and is then pinned in StateDir), and a known key id with
	// another key is refused.
	PinnedKeys []oprf.PublicKey
	// BatchSize is the OPRF and upload batch size (default 1024).
	BatchSize int
	// Workers is the number of batches in flight (default 2×GOMAXPROCS).
	Workers int
	// CheckTokens is the most tokens one check request carries (default
	// MaxCheckEntries, the hub's limit); a check of more images goes in
	// several requests.
	CheckTokens int
	// Progress, if set, receives progress lines for long work.
	Progress io.Writer
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
}

// Client talks to a hub and a key server for one agency. It is safe for
// concurrent use.
type Client struct {
	cfg     Config
	hubConn *grpc.ClientConn
	hub     veilmatchv1.HubServiceClient
	keys    []*keyServer
	state   *stateDir
	log     *slog.Logger
}

// New returns a client. Connections are made lazily on first use.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Agency == "":
		return nil, errors.New("client config: agency is required")
	case cfg.TLS == nil:
		return nil, errors.New("client config: TLS configuration is required")
	case cfg.Hub == "" && len(cfg.keyServers()) == 0:
		return nil, errors.New("client config: a hub or key server address is required")
	case cfg.StateDir == "":
		return nil, errors.New("client config: state directory is required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.CheckTokens <= 0 {
		cfg.CheckTokens = MaxCheckEntries
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, state: st, log: log}
	if cfg.HubID == "" {
		cfg.HubID = "hub"
	}
	if cfg.KeyServerID == "" {
		cfg.KeyServerID = "keyserver"
	}
	maxMsg := grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20))
	if cfg.Hub != "" {
		tlsCfg, err := mtls.ForServer(cfg.TLS, cfg.HubID)
		if err != nil {
			return nil, err
		}
		if c.hubConn, err = grpc.NewClient(cfg.Hub, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)), maxMsg); err != nil {
			return nil, fmt.Errorf("hub %s: %w", cfg.Hub, err)
		}
		c.hub = veilmatchv1.NewHubServiceClient(c.hubConn)
	}
	if len(cfg.keyServers()) > 0 {
		if c.keys, err = dialKeyServers(cfg, maxMsg); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close closes the connections.
func (c *Client) Close() error {
	var errs []error
	if c.hubConn != nil {
		errs = append(errs, c.hubConn.Close())
	}
	for _, k := range c.keys {
		errs = append(errs, k.conn.Close())
	}
	return errors.Join(errs...)
}

// localName maps a list reference ("name" or "agency/name" for the
// agency's own list) to the name of its local state.
func (c *Client) localName(ref string) string {
	if owner, name, ok := strings.Cut(ref, "/"); ok && owner == c.cfg.Agency {
		return name
	}
	return ref
}

func (c *Client) needHub() error {
	if c.hub == nil {
		return errors.New("no hub address configured")
	}
	return nil
}

// Vocabulary is the hub policy's closed vocabulary, as the agency may use
// it.
type Vocabulary struct {
	Kinds, Categories, Roles []string
	// Purposes are those the agency's role may state; KnownPurposes those
	// any role may.
	Purposes, KnownPurposes []string
}

// Vocabulary fetches the hub policy's vocabulary.
func (c *Client) Vocabulary(ctx context.Context) (Vocabulary, error) {
	if err := c.needHub(); err != nil {
		return Vocabulary{}, err
	}
	resp, err := c.hub.GetVocabulary(ctx, &veilmatchv1.GetVocabularyRequest{})
	if err != nil {
		return Vocabulary{}, fmt.Errorf("get the hub's vocabulary: %w", err)
	}
	return Vocabulary{Kinds: resp.GetKinds(), Categories: resp.GetCategories(), Roles: resp.GetRoles(), Purposes: resp.GetPurposes(),
		KnownPurposes: resp.GetKnownPurposes()}, nil
}

// ErrVocabulary reports a kind, category, role or purpose that the hub's
// policy does not know; nothing was sent.
var ErrVocabulary = errors.New("client: not in the hub's vocabulary")

// check returns an ErrVocabulary error unless w is one of words.
func (v Vocabulary) check(what, w string, words []string) error {
	if !slices.Contains(words, w) {
		return fmt.Errorf("%w: %s %q is not known to the hub's policy; use one of: %s", ErrVocabulary, what, w, strings.Join(words, ", "))
	}
	return nil
}

// checkPurpose returns an ErrVocabulary error, naming the agency's
// purposes, for a purpose no role may state. A known purpose the agency's
// role may not state is the policy's to refuse, on the record.
func (v Vocabulary) checkPurpose(p string) error {
	if p == "" || slices.Contains(v.KnownPurposes, p) {
		return nil
	}
	return fmt.Errorf("%w: purpose %q is not known to the hub's policy; use one of: %s", ErrVocabulary, p, strings.Join(v.Purposes, ", "))
}
