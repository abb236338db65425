package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/crypto/token"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// ErrTooFewKeyServers reports that fewer key servers answered than a
// threshold key needs; the error names each one at fault. Nothing was sent
// to the hub for the batch.
var ErrTooFewKeyServers = errors.New("client: too few key servers answered")

// keyServer is one configured key server.
type keyServer struct {
	addr string
	conn *grpc.ClientConn
	kc   veilmatchv1.KeyServiceClient
}

// dialKeyServers connects (lazily) to every configured key server, each of
// which must present a key server identity (keyserver or keyserver-<name>).
func dialKeyServers(cfg Config, opts ...grpc.DialOption) ([]*keyServer, error) {
	tlsCfg, err := mtls.ForServerFamily(cfg.TLS, cfg.KeyServerID)
	if err != nil {
		return nil, err
	}
	var out []*keyServer
	for _, addr := range cfg.keyServers() {
		conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))...)
		if err != nil {
			for _, k := range out {
				k.conn.Close()
			}
			return nil, fmt.Errorf("key server %s: %w", addr, err)
		}
		out = append(out, &keyServer{addr: addr, conn: conn, kc: veilmatchv1.NewKeyServiceClient(conn)})
	}
	return out, nil
}

// keyServers returns the configured key server addresses.
func (cfg Config) keyServers() []string {
	if len(cfg.KeyServers) > 0 {
		return cfg.KeyServers
	}
	if cfg.KeyServer != "" {
		return []string{cfg.KeyServer}
	}
	return nil
}

// SkippedServer is a key server left out of an operation, and why.
type SkippedServer struct {
	Addr string `json:"addr"`
	// Name is the server's certificate id, when it got that far.
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason"`
}

// fault reads "ADDR (NAME): REASON".
func (s SkippedServer) fault() string {
	if s.Name != "" {
		return s.Addr + " (" + s.Name + "): " + s.Reason
	}
	return s.Addr + ": " + s.Reason
}

// String reads "ADDR (NAME) skipped: REASON".
func (s SkippedServer) String() string {
	if s.Name != "" {
		return s.Addr + " (" + s.Name + ") skipped: " + s.Reason
	}
	return s.Addr + " skipped: " + s.Reason
}

// keyInfo is one key server's answer to GetPublicKey.
type keyInfo struct {
	srv   *keyServer
	name  string // the server's certificate id, when known
	resp  *veilmatchv1.GetPublicKeyResponse
	set   *oprf.KeySet
	index int
}

// session is one operation's view of the key servers: the key tokens are
// made under, and how to evaluate a batch under it. With one key server
// holding the whole key it is today's single-key protocol; with a key set,
// every batch goes to threshold share servers, and a server that fails is
// named, left out for the rest of the session, and replaced by another.
type session struct {
	c      *Client
	keyID  string
	single *oprf.Client
	thr    *oprf.ThresholdClient
	shares []keyInfo // the servers of the key set, in configured order

	mu      sync.Mutex
	bad     map[string]bool
	skipped []SkippedServer
}

// KeyID returns the id of the key tokens are made under.
func (s *session) KeyID() string { return s.keyID }

// skip records that a server (its certificate id name, when known) is
// left out, once.
func (s *session) skip(addr, name, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bad == nil {
		s.bad = map[string]bool{}
	}
	if s.bad[addr] {
		return
	}
	s.bad[addr] = true
	sk := SkippedServer{Addr: addr, Name: name, Reason: reason}
	s.skipped = append(s.skipped, sk)
	s.c.log.Warn("key server skipped", "addr", addr, "name", name, "reason", reason)
	fmt.Fprintf(s.c.cfg.Progress, "key server %s\n", sk)
}

// Skipped returns the servers left out so far.
func (s *session) Skipped() []SkippedServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.skipped)
}

func (s *session) isBad(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad[addr]
}

// keyQueryTimeout bounds GetPublicKey at each server when several are
// configured, so that one unreachable server does not hold up the rest.
const keyQueryTimeout = 10 * time.Second

// newSession asks the key servers for their keys, checks the key (and key
// set) against what the agency trusts, and returns a session bound to it.
func (c *Client) newSession(ctx context.Context) (*session, error) {
	if len(c.keys) == 0 {
		return nil, errors.New("no key server address configured")
	}
	s := &session{c: c}
	if len(c.keys) > 1 {
		return s, c.bindThreshold(s, c.queryKeys(ctx, s))
	}
	k := c.keys[0]
	var p peer.Peer
	resp, err := k.kc.GetPublicKey(ctx, &veilmatchv1.GetPublicKeyRequest{}, grpc.Peer(&p))
	if err != nil {
		return nil, fmt.Errorf("get key server public key: %w", err)
	}
	info, err := readKeyInfo(k, resp, &p)
	if err != nil {
		return nil, fmt.Errorf("key server %s: %w", k.addr, err)
	}
	if info.set != nil {
		return s, c.bindThreshold(s, []keyInfo{*info})
	}
	return s, c.bindSingle(s, *info)
}

// queryKeys asks every key server for its key at once; the servers that
// fail are skipped.
func (c *Client) queryKeys(ctx context.Context, s *session) []keyInfo {
	infos := make([]*keyInfo, len(c.keys))
	var wg sync.WaitGroup
	for i, k := range c.keys {
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, keyQueryTimeout)
			defer cancel()
			var p peer.Peer
			resp, err := k.kc.GetPublicKey(qctx, &veilmatchv1.GetPublicKeyRequest{}, grpc.Peer(&p))
			if err != nil {
				s.skip(k.addr, "", "get public key: "+errorText(err))
				return
			}
			info, err := readKeyInfo(k, resp, &p)
			if err != nil {
				s.skip(k.addr, "", err.Error())
				return
			}
			infos[i] = info
		})
	}
	wg.Wait()
	var out []keyInfo
	for _, i := range infos {
		if i != nil {
			out = append(out, *i)
		}
	}
	return out
}

// readKeyInfo checks one GetPublicKey answer.
func readKeyInfo(k *keyServer, resp *veilmatchv1.GetPublicKeyResponse, p *peer.Peer) (*keyInfo, error) {
	if resp.GetSuite() != oprf.SuiteID {
		return nil, fmt.Errorf("speaks suite %q, want %q", resp.GetSuite(), oprf.SuiteID)
	}
	info := &keyInfo{srv: k, resp: resp}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		if id, err := mtls.FromCertificate(ti.State.PeerCertificates[0]); err == nil {
			info.name = id.ID
		}
	}
	if resp.GetKeySet() == nil {
		return info, nil
	}
	set, err := oprf.KeySetFromProto(resp.GetKeySet())
	if err != nil {
		return nil, fmt.Errorf("its key set: %v", err)
	}
	if set.KeyID != resp.GetKeyId() || string(set.GroupKey) != string(resp.GetPublicKey()) {
		return nil, errors.New("its key set is not for the key it names")
	}
	if _, ok := set.Share(int(resp.GetShareIndex())); !ok {
		return nil, fmt.Errorf("claims share %d of a %d-of-%d key", resp.GetShareIndex(), set.Threshold, len(set.Shares))
	}
	info.set, info.index = &set, int(resp.GetShareIndex())
	return info, nil
}

// bindSingle binds s to the whole key of the only key server.
func (c *Client) bindSingle(s *session, info keyInfo) error {
	pub := oprf.PublicKey{KeyID: info.resp.GetKeyId(), Bytes: info.resp.GetPublicKey()}
	if err := c.pin(pub, oprf.EndorsementsFromProto(info.resp.GetEndorsements())); err != nil {
		return err
	}
	oc, err := oprf.NewClient(pub)
	if err != nil {
		return err
	}
	s.keyID, s.single = pub.KeyID, oc
	return nil
}

// bindThreshold binds s to the newest key set the servers hold shares of;
// servers with another key set, a whole key or a share already claimed are
// skipped. At least threshold servers must remain.
func (c *Client) bindThreshold(s *session, infos []keyInfo) error {
	set := c.chooseSet(infos)
	if set == nil {
		if len(infos) > 0 {
			return fmt.Errorf("%d key servers are configured but none holds a share of a threshold key; configure one key server for a whole key", len(c.keys))
		}
		return s.tooFew(0, 1, len(c.keys))
	}
	claimed := map[int]bool{}
	var chain []oprf.Endorsement
	for _, i := range infos {
		switch {
		case i.set == nil:
			s.skip(i.srv.addr, i.name, "holds a whole key, not a share of key set "+describeSet(*set))
		case !i.set.Equal(*set):
			s.skip(i.srv.addr, i.name, fmt.Sprintf("holds a share of key set %s, not of the current %s", describeSet(*i.set), describeSet(*set)))
		case claimed[i.index]:
			s.skip(i.srv.addr, i.name, fmt.Sprintf("also claims share %d", i.index))
		default:
			claimed[i.index] = true
			s.shares = append(s.shares, i)
			chain = oprf.EndorsementsFromProto(i.resp.GetEndorsements())
		}
	}
	if len(s.shares) < set.Threshold {
		return s.tooFew(len(s.shares), set.Threshold, len(set.Shares))
	}
	if err := c.pin(set.Public(), chain); err != nil {
		return err
	}
	if err := c.state.checkGeneration(*set); err != nil {
		return err
	}
	thr, err := oprf.NewThresholdClient(*set)
	if err != nil {
		return err
	}
	s.keyID, s.thr = set.KeyID, thr
	return nil
}

// chooseSet picks the key set to use among the servers' answers: one whose
// group key the agency already trusts before one it does not, then the
// newest generation, then the set most servers hold.
func (c *Client) chooseSet(infos []keyInfo) *oprf.KeySet {
	trusted := c.trustedKeys()
	holders := map[*oprf.KeySet]int{}
	var sets []*oprf.KeySet
	for _, i := range infos {
		if i.set == nil {
			continue
		}
		k := slices.IndexFunc(sets, func(s *oprf.KeySet) bool { return s.Equal(*i.set) })
		if k < 0 {
			sets = append(sets, i.set)
			k = len(sets) - 1
		}
		holders[sets[k]]++
	}
	isTrusted := func(s *oprf.KeySet) bool {
		return slices.ContainsFunc(trusted, func(p oprf.PublicKey) bool { return p.KeyID == s.KeyID && bytes.Equal(p.Bytes, s.GroupKey) })
	}
	better := func(a, b *oprf.KeySet) bool {
		if ta, tb := isTrusted(a), isTrusted(b); ta != tb {
			return ta
		}
		if a.Generation != b.Generation {
			return a.Generation > b.Generation
		}
		return holders[a] > holders[b]
	}
	var best *oprf.KeySet
	for _, s := range sets {
		if best == nil || better(s, best) {
			best = s
		}
	}
	return best
}

// describeSet names a key set in messages: "k1 (2-of-3, generation 1)".
func describeSet(s oprf.KeySet) string {
	return fmt.Sprintf("%s (%d-of-%d, generation %d, group key %x…)", s.KeyID, s.Threshold, len(s.Shares), s.Generation, s.GroupKey[:4])
}

// tooFew returns the ErrTooFewKeyServers error naming every server at
// fault.
func (s *session) tooFew(got, t, n int) error {
	var names []string
	for _, sk := range s.Skipped() {
		names = append(names, sk.fault())
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: a %d-of-%d key needs %d key servers, and only %d are configured; name at least %d (VEILMATCH_KEYSERVER=addr1,addr2,...)",
			ErrTooFewKeyServers, t, n, t, got, t)
	}
	return fmt.Errorf("%w: %d of the %d key servers a %d-of-%d key needs answered; at fault: %s",
		ErrTooFewKeyServers, got, t, t, n, strings.Join(names, "; "))
}

// tokens computes the tokens of inputs (lines names them in errors).
func (s *session) tokens(ctx context.Context, inputs [][]byte, lines string) ([]token.Token, error) {
	if s.single != nil {
		return s.singleTokens(ctx, inputs, lines)
	}
	return s.thresholdTokens(ctx, inputs, lines)
}

// singleTokens is the single-key protocol: one key server evaluates.
func (s *session) singleTokens(ctx context.Context, inputs [][]byte, lines string) ([]token.Token, error) {
	batch, err := s.single.Blind(inputs)
	if err != nil {
		return nil, err
	}
	resp, err := s.c.evaluate(ctx, s.c.keys[0], &veilmatchv1.EvaluateRequest{KeyId: s.keyID, BlindedElements: batch.Blinded})
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", lines, err)
	}
	toks, err := s.single.Finalize(batch, resp.GetEvaluatedElements(), resp.GetProof())
	if err != nil {
		return nil, fmt.Errorf("key server answer for %s: %w", lines, err)
	}
	return toks, nil
}

// thresholdTokens sends one blinded batch to threshold share servers at
// once, replaces each that fails by the next, and combines the verified
// answers.
func (s *session) thresholdTokens(ctx context.Context, inputs [][]byte, lines string) ([]token.Token, error) {
	batch, err := s.thr.Blind(inputs)
	if err != nil {
		return nil, err
	}
	t := s.thr.KeySet().Threshold
	req := &veilmatchv1.EvaluateRequest{KeyId: s.keyID, BlindedElements: batch.Blinded}
	type answer struct {
		ev   *oprf.ShareEvaluation
		info keyInfo
		err  error
	}
	answers := make(chan answer)
	next, running := 0, 0
	launch := func() bool {
		for ; next < len(s.shares); next++ {
			info := s.shares[next]
			if s.isBad(info.srv.addr) {
				continue
			}
			next++
			running++
			go func() {
				ev, err := s.evaluateShare(ctx, info, batch, req)
				answers <- answer{ev, info, err}
			}()
			return true
		}
		return false
	}
	for range t {
		launch()
	}
	var evs []*oprf.ShareEvaluation
	for running > 0 {
		a := <-answers
		running--
		if a.err != nil {
			s.skip(a.info.srv.addr, a.info.name, a.err.Error())
			if len(evs)+running < t {
				launch()
			}
			continue
		}
		evs = append(evs, a.ev)
	}
	if len(evs) < t {
		return nil, fmt.Errorf("evaluate %s: %w", lines, s.tooFew(len(evs), t, len(s.thr.KeySet().Shares)))
	}
	return s.thr.Combine(batch, evs)
}

// evaluateShare has one share server evaluate batch and verifies its
// answer against the share's key.
func (s *session) evaluateShare(ctx context.Context, info keyInfo, batch *oprf.Batch, req *veilmatchv1.EvaluateRequest) (*oprf.ShareEvaluation, error) {
	resp, err := s.c.evaluate(ctx, info.srv, req)
	if err != nil {
		return nil, errors.New(errorText(err))
	}
	if resp.GetKeyId() != s.keyID {
		return nil, fmt.Errorf("evaluated under key %q, not %q", resp.GetKeyId(), s.keyID)
	}
	ev, err := s.thr.VerifyShare(batch, info.index, resp.GetEvaluatedElements(), resp.GetProof())
	if err != nil {
		return nil, fmt.Errorf("its answer does not verify against share %d's key (%v): it may hold a share of another key", info.index, err)
	}
	return ev, nil
}
