package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
	"github.com/veilmatch/veilmatch/server/rpc"
)

// startShareServers runs one key server per share, share i with the
// development certificate of keyserver-i, and returns their addresses.
func startShareServers(t *testing.T, shares []*oprf.PrivateKey) []string {
	t.Helper()
	var addrs []string
	for _, sh := range shares {
		i, _, _ := sh.Share()
		srv := servertest.KeyServer(t, keyserver.Config{Keys: []*oprf.PrivateKey{sh}, TLS: servertest.ServerTLS(t, fmt.Sprintf("keyserver-%d", i))})
		addrs = append(addrs, srv.Addr().String())
	}
	return addrs
}

// deadAddr is a loopback address nothing listens on: a stopped key server.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func splitKey(t *testing.T, key *oprf.PrivateKey, n, thr int) []*oprf.PrivateKey {
	t.Helper()
	shares, err := oprf.Split(key, n, thr)
	if err != nil {
		t.Fatal(err)
	}
	return shares
}

func agencyClient(t *testing.T, agency, hubAddr string, keyServers ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Agency: agency, Hub: hubAddr, KeyServers: keyServers, TLS: servertest.ClientTLS(t, agency), StateDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var thresholdRows = "phone\n07700 900123\n07700 900124\n07700 900125\n"

func suspects(list string) client.PublishOptions {
	return client.PublishOptions{List: list, Kind: normalize.Phone, Category: "suspect", Normalize: normalize.Options{Region: "GB"}}
}

// TestThresholdTokensSameAsWholeKey: one agency publishes through the key
// server holding the whole key, another the same numbers through 2-of-3
// share servers of that key split: every entry matches, so the tokens are
// the same, and a split needs no re-upload.
func TestThresholdTokensSameAsWholeKey(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	hubAddr := startHub(t)
	ctx := context.Background()
	if _, err := agencyClient(t, "police-us", hubAddr, startKeyServer(t, key)).Publish(ctx, strings.NewReader(thresholdRows), suspects("us")); err != nil {
		t.Fatal(err)
	}
	gb := agencyClient(t, "police-gb", hubAddr, startShareServers(t, splitKey(t, key, 3, 2))...)
	res, err := gb.Publish(ctx, strings.NewReader(thresholdRows), suspects("gb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeyServersSkipped) != 0 {
		t.Fatalf("skipped %v with every server up", res.KeyServersSkipped)
	}
	ov, err := gb.Overlaps(ctx, "gb", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(ov.Matches) != 3 {
		t.Fatalf("%d matches with the whole key's list, want all 3 entries: %+v", len(ov.Matches), ov)
	}
}

// TestThresholdOneServerDown: with one of three share servers stopped,
// publish and check work and name the server they skipped.
func TestThresholdOneServerDown(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addrs := startShareServers(t, splitKey(t, key, 3, 2))
	dead := deadAddr(t)
	c := agencyClient(t, "police-gb", startHub(t), dead, addrs[1], addrs[2])
	ctx := context.Background()
	res, err := c.Publish(ctx, strings.NewReader(thresholdRows), suspects("gb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeyServersSkipped) != 1 || res.KeyServersSkipped[0].Addr != dead || !strings.Contains(res.KeyServersSkipped[0].Reason, "unreachable") {
		t.Fatalf("skipped %v, want %s as unreachable", res.KeyServersSkipped, dead)
	}
	chk, err := c.Check(ctx, strings.NewReader(thresholdRows), client.CheckOptions{Kind: normalize.Phone, Normalize: normalize.Options{Region: "GB"}}, investigation)
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.KeyServersSkipped) != 1 || chk.KeyServersSkipped[0].Addr != dead {
		t.Fatalf("check skipped %v, want %s", chk.KeyServersSkipped, dead)
	}
}

// TestThresholdTwoServersDown: with two of three stopped, publish fails,
// naming both, and the hub holds nothing of the agency.
func TestThresholdTwoServersDown(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addrs := startShareServers(t, splitKey(t, key, 3, 2))
	dead1, dead2 := deadAddr(t), deadAddr(t)
	hubAddr := startHub(t)
	c := agencyClient(t, "police-gb", hubAddr, addrs[0], dead1, dead2)
	_, err := c.Publish(context.Background(), strings.NewReader(thresholdRows), suspects("gb"))
	if !errors.Is(err, client.ErrTooFewKeyServers) || !strings.Contains(err.Error(), dead1) || !strings.Contains(err.Error(), dead2) {
		t.Fatalf("err = %v, want ErrTooFewKeyServers naming %s and %s", err, dead1, dead2)
	}
	if !strings.Contains(err.Error(), "1 of the 2 key servers a 2-of-3 key needs answered") {
		t.Fatalf("err = %v, want the count of answers", err)
	}
	lists, err := agencyClient(t, "police-gb", hubAddr, addrs[0]).Lists(context.Background())
	if err != nil || len(lists) != 0 {
		t.Fatalf("the hub holds %v (%v) after a failed publish", lists, err)
	}
}

// lyingKeyServer presents the key set of one key but evaluates with a
// share of another: only its proofs can tell.
type lyingKeyServer struct {
	*keyserver.Service
	claims *veilmatchv1.GetPublicKeyResponse
}

func (l lyingKeyServer) GetPublicKey(context.Context, *veilmatchv1.GetPublicKeyRequest) (*veilmatchv1.GetPublicKeyResponse, error) {
	return l.claims, nil
}

// TestThresholdForeignShareCaught: a server that claims share 2 of the
// agency's key but holds a share of another key is caught by its proof,
// named, and replaced by the third server.
func TestThresholdForeignShareCaught(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	other, _ := oprf.GenerateKey("k1")
	shares := splitKey(t, key, 3, 2)
	foreign := splitKey(t, other, 3, 2)
	addrs := startShareServers(t, shares)

	lim, err := quota.NewLimiter(servertest.Generous, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := keyserver.NewService([]*oprf.PrivateKey{foreign[1]}, keyserver.DefaultMaxBatch, lim, servertest.Policy(t))
	if err != nil {
		t.Fatal(err)
	}
	_, set, _ := shares[1].Share()
	claims := &veilmatchv1.GetPublicKeyResponse{KeyId: "k1", Suite: oprf.SuiteID, PublicKey: key.Public().Bytes, KeySet: oprf.KeySetProto(set), ShareIndex: 2}
	srv, err := rpc.New(rpc.ServerOptions{Listen: "127.0.0.1:0", TLS: servertest.ServerTLS(t, "keyserver-2"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	veilmatchv1.RegisterKeyServiceServer(srv.GRPC, lyingKeyServer{svc, claims})
	servertest.Serve(t, srv.Serve)
	liar := srv.Addr().String()

	c := agencyClient(t, "police-gb", startHub(t), addrs[0], liar, addrs[2])
	res, err := c.Publish(context.Background(), strings.NewReader(thresholdRows), suspects("gb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeyServersSkipped) != 1 || res.KeyServersSkipped[0].Addr != liar || !strings.Contains(res.KeyServersSkipped[0].Reason, "does not verify against share 2's key") {
		t.Fatalf("skipped %v, want %s caught by its proof", res.KeyServersSkipped, liar)
	}
}

// TestOneShareServerIsNotEnough: an agency configured with a single share
// server of a 2-of-3 key is told to name more.
func TestOneShareServerIsNotEnough(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addrs := startShareServers(t, splitKey(t, key, 3, 2))
	_, err := agencyClient(t, "police-gb", startHub(t), addrs[0]).Publish(context.Background(), strings.NewReader(thresholdRows), suspects("gb"))
	if !errors.Is(err, client.ErrTooFewKeyServers) || !strings.Contains(err.Error(), "VEILMATCH_KEYSERVER=") {
		t.Fatalf("err = %v, want ErrTooFewKeyServers asking for more key servers", err)
	}
}

// TestKeySetPinned: a second split of the same key is generation 1 again,
// with other share keys; an agency that used the first refuses it.
func TestKeySetPinned(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	hubAddr, state := startHub(t), t.TempDir()
	publish := func(addrs []string, list string) error {
		c, err := client.New(client.Config{Agency: "police-gb", Hub: hubAddr, KeyServers: addrs, TLS: servertest.ClientTLS(t, "police-gb"), StateDir: state, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Publish(context.Background(), strings.NewReader(thresholdRows), suspects(list))
		return err
	}
	if err := publish(startShareServers(t, splitKey(t, key, 3, 2)), "a"); err != nil {
		t.Fatal(err)
	}
	err := publish(startShareServers(t, splitKey(t, key, 3, 2)), "b")
	if !errors.Is(err, client.ErrKeyChanged) || !strings.Contains(err.Error(), "other share keys") {
		t.Fatalf("err = %v, want ErrKeyChanged for generation 1 with other share keys", err)
	}
}
