package keyserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/group"
	voprf "github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/keyserver"
	"github.com/veilmatch/veilmatch/server/quota"
)

type vectors struct {
	SkSm    string `json:"skSm"`
	PkSm    string `json:"pkSm"`
	Vectors []struct {
		Blind, BlindedElement, EvaluationElement, Input, Output string
	} `json:"vectors"`
}

func loadVectors(t *testing.T) vectors {
	data, err := os.ReadFile("../../crypto/oprf/testdata/rfc9497-ristretto255-sha512-voprf.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// start runs a key server with key and limits on 127.0.0.1:0.
func start(t testing.TB, key *oprf.PrivateKey, limits quota.Limits) string {
	t.Helper()
	srv := servertest.KeyServer(t, keyserver.Config{Keys: []*oprf.PrivateKey{key}, Quota: limits, Reflection: true})
	return srv.Addr().String()
}

func client(t testing.TB, addr, party string) veilmatchv1.KeyServiceClient {
	return veilmatchv1.NewKeyServiceClient(servertest.Dial(t, addr, servertest.ClientTLS(t, party)))
}

var generous = quota.Limits{Rate: 1e9, Burst: 1 << 20, Daily: 1 << 40}

// TestIndependentClientGetsVectorOutput sends the RFC 9497 blinded element
// over gRPC and checks the answer with circl's own verifiable client, not
// the project's.
func TestIndependentClientGetsVectorOutput(t *testing.T) {
	v := loadVectors(t)
	key, err := oprf.NewPrivateKey("rfc9497", unhex(t, v.SkSm))
	if err != nil {
		t.Fatal(err)
	}
	addr := start(t, key, generous)
	kc := client(t, addr, "police-gb")
	ctx := context.Background()

	pk, err := kc.GetPublicKey(ctx, &veilmatchv1.GetPublicKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if pk.Suite != "ristretto255-SHA512" || pk.KeyId != "rfc9497" || !bytes.Equal(pk.PublicKey, unhex(t, v.PkSm)) {
		t.Fatalf("GetPublicKey = %v", pk)
	}

	vec := v.Vectors[0]
	resp, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{KeyId: "rfc9497", BlindedElements: [][]byte{unhex(t, vec.BlindedElement)}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.EvaluatedElements[0], unhex(t, vec.EvaluationElement)) {
		t.Fatalf("evaluated = %x, want %s", resp.EvaluatedElements[0], vec.EvaluationElement)
	}

	// circl's verifiable client, pinned to the key from GetPublicKey.
	suite := voprf.SuiteRistretto255
	pub := new(voprf.PublicKey)
	if err := pub.UnmarshalBinary(suite, pk.PublicKey); err != nil {
		t.Fatal(err)
	}
	vc := voprf.NewVerifiableClient(suite, pub)
	blind := suite.Group().NewScalar()
	if err := blind.UnmarshalBinary(unhex(t, vec.Blind)); err != nil {
		t.Fatal(err)
	}
	fin, _, err := vc.DeterministicBlind([][]byte{unhex(t, vec.Input)}, []voprf.Blind{blind})
	if err != nil {
		t.Fatal(err)
	}
	ev := suite.Group().NewElement()
	if err := ev.UnmarshalBinary(resp.EvaluatedElements[0]); err != nil {
		t.Fatal(err)
	}
	proof := new(dleq.Proof)
	if err := proof.UnmarshalBinary(suite.Group(), resp.Proof); err != nil {
		t.Fatal(err)
	}
	out, err := vc.Finalize(fin, &voprf.Evaluation{Elements: []group.Element{ev}, Proof: proof})
	if err != nil {
		t.Fatalf("circl rejects the key server's proof: %v", err)
	}
	if !bytes.Equal(out[0], unhex(t, vec.Output)) {
		t.Fatalf("output = %x, want %s", out[0], vec.Output)
	}
}

func TestRejectsMalformedBatches(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addr := start(t, key, generous)
	kc := client(t, addr, "police-us")
	pc, _ := oprf.NewClient(key.Public())
	in, _ := oprf.Input("phone", "+15555550100")
	b, _ := pc.Blind([][]byte{in})
	good := b.Blinded[0]

	big := make([][]byte, keyserver.DefaultMaxBatch+1)
	for i := range big {
		big[i] = good
	}
	tests := []struct {
		name  string
		req   *veilmatchv1.EvaluateRequest
		wants string
	}{
		{"empty", &veilmatchv1.EvaluateRequest{}, "empty"},
		{"oversize", &veilmatchv1.EvaluateRequest{BlindedElements: big}, "maximum batch of 4096"},
		{"identity", &veilmatchv1.EvaluateRequest{BlindedElements: [][]byte{good, good, make([]byte, 32)}}, "blinded_elements[2]: oprf: invalid element: identity element"},
		{"non-canonical", &veilmatchv1.EvaluateRequest{BlindedElements: [][]byte{bytes.Repeat([]byte{0xff}, 32), good}}, "blinded_elements[0]"},
		{"short", &veilmatchv1.EvaluateRequest{BlindedElements: [][]byte{good, good[:5]}}, "blinded_elements[1]"},
		{"unknown key", &veilmatchv1.EvaluateRequest{KeyId: "k0", BlindedElements: [][]byte{good}}, `key_id "k0"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kc.Evaluate(context.Background(), tc.req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.wants) {
				t.Fatalf("err = %v, want InvalidArgument containing %q", err, tc.wants)
			}
		})
	}
}

func TestQuotaExhausted(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addr := start(t, key, quota.Limits{Rate: 0.001, Burst: keyserver.DefaultMaxBatch, Daily: 3})
	kc := client(t, addr, "police-th")
	pc, _ := oprf.NewClient(key.Public())
	in, _ := oprf.Input("phone", "+66812345678")
	b, _ := pc.Blind([][]byte{in, in})
	ctx := context.Background()
	if _, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{BlindedElements: b.Blinded}); err != nil {
		t.Fatal(err)
	}
	_, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{BlindedElements: b.Blinded})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "daily cap") {
		t.Fatalf("err = %v, want ResourceExhausted (daily cap)", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Fatalf("no retry information in %v", st.Details())
	}
	// Another agency has its own quota.
	if _, err := client(t, addr, "police-gb").Evaluate(ctx, &veilmatchv1.EvaluateRequest{BlindedElements: b.Blinded}); err != nil {
		t.Fatalf("other agency refused: %v", err)
	}
}

// TestOnlyAgenciesConnect: an auditor's or a server's certificate fails the
// handshake, so not even a message of the maximum size is read from it.
func TestOnlyAgenciesConnect(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addr := start(t, key, generous)
	huge := &veilmatchv1.EvaluateRequest{BlindedElements: make([][]byte, 1<<20)}
	for _, party := range []string{"auditor", "hub", "keyserver"} {
		t.Run(party, func(t *testing.T) {
			kc := client(t, addr, party)
			// The client may be writing the request when the server's
			// refusal arrives: it sees a bad certificate or a broken pipe.
			if _, err := kc.Evaluate(context.Background(), huge); status.Code(err) != codes.Unavailable {
				t.Fatalf("Evaluate: %v, want a failed handshake", err)
			}
			if _, err := kc.GetPublicKey(context.Background(), &veilmatchv1.GetPublicKeyRequest{}); status.Code(err) != codes.Unavailable {
				t.Fatalf("GetPublicKey: %v, want a failed handshake", err)
			}
		})
	}
	if _, err := client(t, addr, "police-gb").GetPublicKey(context.Background(), &veilmatchv1.GetPublicKeyRequest{}); err != nil {
		t.Fatalf("an agency cannot read the public key: %v", err)
	}
}

// TestReceiveLimit: a request larger than the largest batch can need is
// refused before it is decoded (8.4M empty elements once cost 840 MB), and
// the server keeps serving.
func TestReceiveLimit(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addr := start(t, key, generous)
	kc := client(t, addr, "police-gb")
	ctx := context.Background()
	for _, n := range []int{8_400_000, keyserver.RecvMsgSize(keyserver.DefaultMaxBatch)} {
		_, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{BlindedElements: make([][]byte, n)})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("%d empty elements: %v, want ResourceExhausted", n, err)
		}
	}
	pc, _ := oprf.NewClient(key.Public())
	in, _ := oprf.Input("phone", "+15555550100")
	b, _ := pc.Blind(slices.Repeat([][]byte{in}, keyserver.DefaultMaxBatch))
	if _, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{KeyId: "k1", BlindedElements: b.Blinded}); err != nil {
		t.Fatalf("a full batch after the refusals: %v", err)
	}
}

// TestUnregisteredAgencyRefused: a certificate the CA signed for an agency
// id the registry does not know gets no evaluation.
func TestUnregisteredAgencyRefused(t *testing.T) {
	dir := t.TempDir()
	parties := append(slices.Clone(certs.DefaultParties), certs.Party{Kind: mtls.KindAgency, ID: "police-xx"})
	if err := certs.Generate(dir, certs.Options{Parties: parties}); err != nil {
		t.Fatal(err)
	}
	srvTLS, err := mtls.ServerConfig(mtls.DevFiles(dir, "keyserver"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := oprf.GenerateKey("k1")
	addr := servertest.KeyServer(t, keyserver.Config{TLS: srvTLS, Keys: []*oprf.PrivateKey{key}}).Addr().String()
	pc, _ := oprf.NewClient(key.Public())
	in, _ := oprf.Input("phone", "+15555550100")
	b, _ := pc.Blind([][]byte{in})
	req := &veilmatchv1.EvaluateRequest{BlindedElements: b.Blinded}
	dial := func(party string) veilmatchv1.KeyServiceClient {
		cfg, err := mtls.ClientConfig(mtls.DevFiles(dir, party), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		return veilmatchv1.NewKeyServiceClient(servertest.Dial(t, addr, cfg))
	}
	_, err = dial("police-xx").Evaluate(context.Background(), req)
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "not in the agency registry") {
		t.Fatalf("unregistered agency: %v, want PermissionDenied naming the registry", err)
	}
	if _, err := dial("police-gb").Evaluate(context.Background(), req); err != nil {
		t.Fatalf("registered agency of the same CA: %v", err)
	}
}

// TestHandshakeRequiresOurCA: without a client certificate, or with one from
// another CA, no RPC gets through.
func TestHandshakeRequiresOurCA(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addr := start(t, key, generous)

	otherDir := t.TempDir()
	if err := certs.Generate(otherDir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	other, err := mtls.ClientConfig(mtls.DevFiles(otherDir, "police-gb"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	// Trust our server's CA so only the client certificate is wrong.
	good := servertest.ClientTLS(t, "police-gb")
	other.RootCAs = good.RootCAs
	other.VerifyConnection = nil

	noCert := good.Clone()
	noCert.Certificates = nil
	noCert.GetClientCertificate = nil

	for name, cfg := range map[string]*tls.Config{"no certificate": noCert, "other CA": other} {
		t.Run(name, func(t *testing.T) {
			kc := veilmatchv1.NewKeyServiceClient(servertest.Dial(t, addr, cfg))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := kc.GetPublicKey(ctx, &veilmatchv1.GetPublicKeyRequest{}); status.Code(err) != codes.Unavailable {
				t.Fatalf("GetPublicKey err = %v, want a failed handshake (Unavailable)", err)
			}
			if _, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{BlindedElements: [][]byte{make([]byte, 32)}}); status.Code(err) != codes.Unavailable {
				t.Fatalf("Evaluate err = %v, want a failed handshake (Unavailable)", err)
			}
		})
	}
}

func TestHealthAndReflection(t *testing.T) {
	key, _ := oprf.GenerateKey("k1")
	addr := start(t, key, generous)
	conn := servertest.Dial(t, addr, servertest.ClientTLS(t, "police-gb"))
	ctx := context.Background()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}
	stream, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "veilmatch.v1.KeyService") {
		t.Fatalf("reflection lists %v", names)
	}
}

// BenchmarkEvaluate reports key-server evaluations per second over real
// gRPC+mTLS beside circl's bare Evaluate, in the same run. Compare the
// elems/s metrics of the bare and grpc sub-benchmarks of one batch size.
func BenchmarkEvaluate(b *testing.B) {
	key, _ := oprf.GenerateKey("bench")
	addr := start(b, key, generous)
	pc, _ := oprf.NewClient(key.Public())
	eval := oprf.NewEvaluator(key)
	for _, n := range []int{1, 64, 1024} {
		inputs := make([][]byte, n)
		for i := range inputs {
			inputs[i], _ = oprf.Input("phone", fmt.Sprintf("+447700%06d", i))
		}
		batch, err := pc.Blind(inputs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(benchName("bare", n), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bb, err := oprf.DecodeBatch(batch.Blinded)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := eval.Evaluate(bb); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "elems/s")
		})
		b.Run(benchName("grpc", n), func(b *testing.B) {
			kc := client(b, addr, "police-gb")
			req := &veilmatchv1.EvaluateRequest{BlindedElements: batch.Blinded}
			var once sync.Once
			b.SetParallelism(4) // keep both cores busy across network waits
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := kc.Evaluate(context.Background(), req); err != nil {
						once.Do(func() { b.Error(err) })
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "elems/s")
		})
	}
}

func benchName(kind string, n int) string { return fmt.Sprintf("%s/batch=%d", kind, n) }
