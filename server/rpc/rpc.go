// Package rpc holds what every veilmatch gRPC server shares: mTLS transport,
// the standard health service, optional reflection, one interceptor that
// authenticates the caller from its certificate and adds a request id,
// caller identity and method to every log line, and the one boundary helper
// that turns internal errors into sanitized gRPC status errors.
package rpc

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/server/metrics"
)

// MaxMessageSize bounds every response, and every request of a server
// that sets no smaller MaxRecvMsgSize.
const MaxMessageSize = 16 << 20

// MaxConcurrentStreams bounds the calls in flight on one connection, so one
// client cannot hold unbounded request memory.
const MaxConcurrentStreams = 32

// ServerOptions configures New.
type ServerOptions struct {
	// Listen is the address to listen on, such as 127.0.0.1:7443.
	Listen string
	// TLS is the server's mTLS configuration (see mtls.ServerConfig).
	TLS *tls.Config
	// Reflection enables gRPC server reflection.
	Reflection bool
	// Logger receives one line per RPC; nil means slog.Default().
	Logger *slog.Logger
	// Metrics, if set, records every RPC's latency.
	Metrics *metrics.Metrics
	// MaxRecvMsgSize bounds a request message; zero means MaxMessageSize.
	// Size it to the service's protocol: the request is read into memory
	// before any handler runs.
	MaxRecvMsgSize int
	// Kinds, if set, are the only identity kinds that may connect: others
	// fail the TLS handshake, before sending a byte of a request.
	Kinds []string
	// ServiceKinds, if set, names the identity kinds that may call each
	// service (by full service name); a call from another kind is refused
	// with PERMISSION_DENIED before its request is read. Health and
	// reflection stay open to every authenticated caller.
	ServiceKinds map[string][]string
}

// Server is a listening gRPC server with health checking.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	lis    net.Listener
	log    *slog.Logger
}

// KeepaliveTime is how long a connection may be quiet before the server
// pings it.
const KeepaliveTime = time.Minute

// New listens on o.Listen and returns a gRPC server that requires client
// certificates and runs the logging and identity interceptors. Register
// services on s.GRPC, then call Serve.
func New(o ServerOptions) (*Server, error) {
	if o.TLS == nil {
		return nil, errors.New("rpc: a TLS configuration is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.MaxRecvMsgSize == 0 {
		o.MaxRecvMsgSize = MaxMessageSize
	}
	tlsCfg := o.TLS
	if len(o.Kinds) > 0 {
		tlsCfg = acceptKinds(o.TLS, o.Kinds)
	}
	opts := []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.MaxRecvMsgSize(o.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		// A quiet connection (a watch waiting for alerts) is pinged, so
		// that NATs and load balancers keep it and a dead peer is noticed.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: KeepaliveTime, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(unaryInterceptor(log, o.Metrics)),
		grpc.ChainStreamInterceptor(streamInterceptor(log, o.Metrics)),
	}
	if len(o.ServiceKinds) > 0 {
		opts = append(opts, grpc.InTapHandle(tapKinds(log, o.ServiceKinds)))
	}
	g := grpc.NewServer(opts...)
	h := health.NewServer()
	healthpb.RegisterHealthServer(g, h)
	if o.Reflection {
		reflection.Register(g)
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	return &Server{GRPC: g, Health: h, lis: lis, log: log}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Close releases the listener of a server that will not be served.
func (s *Server) Close() error { return s.lis.Close() }

// Serve serves until ctx is done, then stops gracefully: in-flight RPCs
// finish, new ones are refused. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.GRPC.Serve(s.lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", s.lis.Addr(), err)
	case <-ctx.Done():
		s.Health.Shutdown()
		done := make(chan struct{})
		go func() { s.GRPC.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			s.log.Warn("graceful stop timed out; closing connections")
			s.GRPC.Stop()
		}
		<-errc
		return nil
	}
}

type ctxKey int

const (
	callerKey ctxKey = iota
	loggerKey
	requestIDKey
)

// Caller returns the authenticated identity of the caller of the current RPC.
func Caller(ctx context.Context) (mtls.Identity, bool) {
	id, ok := ctx.Value(callerKey).(mtls.Identity)
	return id, ok
}

// Logger returns the RPC's logger, which carries the request id, caller and
// method.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// RequestID returns the RPC's request id.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// authenticate builds the per-RPC context: it reads the caller's SPIFFE
// identity from the verified certificate chain. Health and reflection need
// a verified certificate too (the handshake demands one) but not an
// identity of a known kind.
func authenticate(ctx context.Context, log *slog.Logger, method string) (context.Context, error) {
	rid := newRequestID()
	l := log.With("request_id", rid, "method", method)
	id, err := mtls.FromContext(ctx)
	if err != nil {
		l.WarnContext(ctx, "unauthenticated call", "error", err)
		return nil, status.Error(codes.Unauthenticated, "a client certificate with a veilmatch SPIFFE identity is required")
	}
	l = l.With("caller", id.String())
	ctx = context.WithValue(ctx, callerKey, id)
	ctx = context.WithValue(ctx, requestIDKey, rid)
	ctx = context.WithValue(ctx, loggerKey, l)
	return ctx, nil
}

func logDone(ctx context.Context, m *metrics.Metrics, method string, start time.Time, err error) {
	st := status.Convert(err)
	m.ObserveRPC(method, st.Code().String(), time.Since(start))
	level := slog.LevelInfo
	if st.Code() == codes.Internal || st.Code() == codes.Unknown || st.Code() == codes.Unavailable {
		level = slog.LevelError
	}
	Logger(ctx).Log(ctx, level, "rpc", "code", st.Code().String(), "duration", time.Since(start))
}

func unaryInterceptor(log *slog.Logger, m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ctx, err := authenticate(ctx, log, info.FullMethod)
		if err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		logDone(ctx, m, info.FullMethod, start, err)
		return resp, err
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w wrappedStream) Context() context.Context { return w.ctx }

func streamInterceptor(log *slog.Logger, m *metrics.Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		ctx, err := authenticate(ss.Context(), log, info.FullMethod)
		if err != nil {
			return err
		}
		err = handler(srv, wrappedStream{ss, ctx})
		logDone(ctx, m, info.FullMethod, start, err)
		return err
	}
}

// Internal logs the full cause of an unexpected failure and returns a
// sanitized status that names only the request id, so no internal detail
// (and never an identifier) crosses the trust boundary.
func Internal(ctx context.Context, op string, err error) error {
	Logger(ctx).ErrorContext(ctx, op+" failed", "error", err)
	return status.Errorf(codes.Internal, "%s failed (request id %s)", op, RequestID(ctx))
}

// Unavailable logs the cause and returns UNAVAILABLE for a down dependency.
func Unavailable(ctx context.Context, op string, err error) error {
	Logger(ctx).ErrorContext(ctx, op+" unavailable", "error", err)
	return status.Errorf(codes.Unavailable, "%s is unavailable, retry later (request id %s)", op, RequestID(ctx))
}

// acceptKinds returns a copy of cfg whose handshake also refuses a client
// whose identity is of none of kinds. mtls.WithVerify applies the check to
// the per-client configuration of a reloading cfg (mtls.Reloader) too.
func acceptKinds(cfg *tls.Config, kinds []string) *tls.Config {
	return mtls.WithVerify(cfg, func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return mtls.ErrNoPeer
		}
		id, err := mtls.FromCertificate(cs.VerifiedChains[0][0])
		if err != nil {
			return err
		}
		if !slices.Contains(kinds, id.Kind) {
			return fmt.Errorf("%w: %s may not connect here (only %s)", mtls.ErrUntrustedPeer, id, strings.Join(kinds, ", "))
		}
		return nil
	})
}

// tapKinds refuses a call to a service whose ServiceKinds do not include
// the caller's kind, as soon as its headers arrive.
func tapKinds(log *slog.Logger, kinds map[string][]string) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		service, _, _ := strings.Cut(strings.TrimPrefix(info.FullMethodName, "/"), "/")
		allowed, ok := kinds[service]
		if !ok {
			return ctx, nil
		}
		id, err := mtls.FromContext(ctx)
		if err != nil {
			return ctx, status.Error(codes.Unauthenticated, "a client certificate with a veilmatch SPIFFE identity is required")
		}
		if !slices.Contains(allowed, id.Kind) {
			log.WarnContext(ctx, "call refused before its request was read", "caller", id.String(), "method", info.FullMethodName)
			return ctx, status.Errorf(codes.PermissionDenied, "%s may not use %s: only callers of kind %s", id, service, strings.Join(allowed, ", "))
		}
		return ctx, nil
	}
}

// RequireKind returns PERMISSION_DENIED unless the caller's identity is of
// one of the given kinds (agency, auditor, server).
func RequireKind(ctx context.Context, kinds ...string) (mtls.Identity, error) {
	id, ok := Caller(ctx)
	if !ok {
		return id, status.Error(codes.Unauthenticated, "no caller identity")
	}
	for _, k := range kinds {
		if id.Kind == k {
			return id, nil
		}
	}
	return id, status.Errorf(codes.PermissionDenied, "callers of kind %q may not use this method", id.Kind)
}
