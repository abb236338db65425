// Package server_test holds the authorization matrix: every RPC of every
// service against every kind of caller, over real mTLS.
package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/internal/servertest"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/hub"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// Callers: the development parties, and three that must fail the handshake.
const (
	police   = "police-gb"
	ngo      = "ngo-shelter"
	auditor  = "auditor"
	ksCaller = "keyserver"
	hubCall  = "hub"
	otherCA  = "other-ca"
	noCert   = "no-cert"
	expired  = "expired"
)

var callers = []string{police, ngo, auditor, ksCaller, hubCall, otherCA, noCert, expired}

// allow lists, per method, the callers that get past authorization; every
// other caller with a valid certificate gets PERMISSION_DENIED (or, at a
// server that admits only some kinds, fails the handshake: see handshake),
// and the three bad certificates never complete the handshake. A method
// missing here fails the test, so a new RPC cannot ship without an entry.
var allow = map[string][]string{
	"/veilmatch.v1.KeyService/GetPublicKey": {police, ngo},
	"/veilmatch.v1.KeyService/Evaluate":     {police, ngo},

	"/veilmatch.v1.HubService/Publish":                 {police, ngo},
	"/veilmatch.v1.HubService/GetUploadStatus":         {police, ngo},
	"/veilmatch.v1.HubService/Overlaps":                {police, ngo},
	"/veilmatch.v1.HubService/Check":                   {police, ngo},
	"/veilmatch.v1.HubService/ListLists":               {police, ngo},
	"/veilmatch.v1.HubService/DeleteList":              {police, ngo},
	"/veilmatch.v1.HubService/RequestDisclosure":       {police, ngo},
	"/veilmatch.v1.HubService/ListDisclosureRequests":  {police, ngo},
	"/veilmatch.v1.HubService/AnswerDisclosureRequest": {police, ngo},
	"/veilmatch.v1.HubService/ListDisclosures":         {police, ngo},
	"/veilmatch.v1.HubService/GetVocabulary":           {police, ngo},
	"/veilmatch.v1.HubService/Watch":                   {police, ngo},
	"/veilmatch.v1.HubService/RetractEntry":            {police, ngo},
	"/veilmatch.v1.HubService/ListRetractions":         {police, ngo},
	"/veilmatch.v1.HubService/UndoRetraction":          {police, ngo},

	"/veilmatch.v1.AuditService/ListDecisions":       {auditor},
	"/veilmatch.v1.AuditService/GetDecision":         {auditor},
	"/veilmatch.v1.AuditService/GetCheckpoint":       {auditor},
	"/veilmatch.v1.AuditService/GetInclusionProof":   {auditor},
	"/veilmatch.v1.AuditService/GetConsistencyProof": {auditor},

	"/veilmatch.v1.UsageService/ReportKeyUsage": {ksCaller},

	"/grpc.health.v1.Health/Check": {police, ngo, auditor, ksCaller, hubCall},
	"/grpc.health.v1.Health/Watch": {police, ngo, auditor, ksCaller, hubCall},
	"/grpc.health.v1.Health/List":  {police, ngo, auditor, ksCaller, hubCall},
}

// handshake lists, per service, the only callers its server lets complete
// the TLS handshake: the key server admits agencies alone, so no other
// identity can make it read a request.
var handshake = map[string][]string{
	veilmatchv1.KeyService_ServiceDesc.ServiceName: {police, ngo},
}

func TestAuthorizationMatrix(t *testing.T) {
	ks := servertest.KeyServer(t, keyserver.Config{})
	h := servertest.Hub(t, hub.Config{})

	services := map[string]string{ // service → address
		veilmatchv1.KeyService_ServiceDesc.ServiceName:   ks.Addr().String(),
		veilmatchv1.HubService_ServiceDesc.ServiceName:   h.Addr().String(),
		veilmatchv1.AuditService_ServiceDesc.ServiceName: h.Addr().String(),
		veilmatchv1.UsageService_ServiceDesc.ServiceName: h.Addr().String(),
		healthpb.Health_ServiceDesc.ServiceName:          h.Addr().String(),
	}
	descs := []grpc.ServiceDesc{veilmatchv1.KeyService_ServiceDesc, veilmatchv1.HubService_ServiceDesc,
		veilmatchv1.AuditService_ServiceDesc, veilmatchv1.UsageService_ServiceDesc, healthpb.Health_ServiceDesc}

	// Every method of every service must have an entry, and no entry may
	// name a method that does not exist.
	seen := map[string]bool{}
	for _, d := range descs {
		for _, m := range d.Methods {
			seen["/"+d.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range d.Streams {
			seen["/"+d.ServiceName+"/"+s.StreamName] = true
		}
	}
	var methods []string
	for m := range seen {
		if _, ok := allow[m]; !ok {
			t.Errorf("%s has no entry in the authorization matrix", m)
		}
		methods = append(methods, m)
	}
	for m := range allow {
		if !seen[m] {
			t.Errorf("the matrix names %s, which no service has", m)
		}
	}
	sort.Strings(methods)

	tlsFor := callerTLS(t)
	for _, c := range callers {
		conns := map[string]*grpc.ClientConn{}
		for _, addr := range services {
			if conns[addr] == nil {
				conns[addr] = servertest.Dial(t, addr, tlsFor[c])
			}
		}
		for _, m := range methods {
			t.Run(c+m, func(t *testing.T) {
				svc := m[1 : len(m)-len(filepath.Base(m))-1]
				code := invoke(t, conns[services[svc]], m)
				admitted, limited := handshake[svc]
				switch {
				case c == otherCA || c == noCert || c == expired, limited && !contains(admitted, c):
					if code != codes.Unavailable {
						t.Fatalf("%s: code %s, want a failed handshake (Unavailable)", c, code)
					}
				case contains(allow[m], c):
					if code == codes.PermissionDenied || code == codes.Unauthenticated || code == codes.Unavailable {
						t.Fatalf("%s is allowed but got %s", c, code)
					}
				default:
					if code != codes.PermissionDenied {
						t.Fatalf("%s got %s, want PermissionDenied", c, code)
					}
				}
			})
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// invoke calls method with an empty request of the right type and returns
// the status code. Streams send one empty message.
func invoke(t *testing.T, conn *grpc.ClientConn, method string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := protoreflect.FullName(method[1:len(method)-len(filepath.Base(method))-1] + "." + filepath.Base(method))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		t.Fatalf("describe %s: %v", method, err)
	}
	md := d.(protoreflect.MethodDescriptor)
	in, out := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return status.Code(conn.Invoke(ctx, method, in, out))
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: md.IsStreamingClient(), ServerStreams: md.IsStreamingServer()}, method)
	if err != nil {
		return status.Code(err)
	}
	if err := stream.SendMsg(in); err != nil && err != io.EOF {
		return status.Code(err)
	}
	if err := stream.CloseSend(); err != nil {
		return status.Code(err)
	}
	err = stream.RecvMsg(out)
	if md.IsStreamingServer() && err == nil {
		return codes.OK // Health.Watch streams updates
	}
	return status.Code(err)
}

// callerTLS returns each caller's client configuration: the development
// parties, a police certificate from another CA, none at all, and an
// expired police certificate from our own CA.
func callerTLS(t *testing.T) map[string]*tls.Config {
	out := map[string]*tls.Config{}
	for _, p := range []string{police, ngo, auditor, ksCaller, hubCall} {
		out[p] = servertest.ClientTLS(t, p)
	}
	other := t.TempDir()
	if err := certs.Generate(other, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	oc, err := mtls.ClientConfig(mtls.DevFiles(other, police), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	oc.RootCAs = out[police].RootCAs // trust our server; only the client certificate is foreign
	out[otherCA] = oc
	nc := out[police].Clone()
	nc.Certificates, nc.GetClientCertificate = nil, nil
	out[noCert] = nc
	ec := out[police].Clone()
	ec.Certificates, ec.GetClientCertificate = []tls.Certificate{expiredCert(t)}, nil
	out[expired] = ec
	return out
}

// expiredCert issues police-gb a certificate from the development CA that
// expired an hour ago.
func expiredCert(t *testing.T) tls.Certificate {
	t.Helper()
	caPEM, err := os.ReadFile("../certs/dev/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile("../certs/dev/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(keyPEM)
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	uri, _ := url.Parse("spiffe://veilmatch.dev/agency/police-gb")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: police},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{uri},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: leafKey}
}
