package hub

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/rpc"
)

// requireAgency authenticates the caller as a registered agency. Auditors
// review decisions through the AuditService and may not use the hub's
// matching at all.
func (s *Service) requireAgency(ctx context.Context) (mtls.Identity, policy.Agency, error) {
	id, ok := rpc.Caller(ctx)
	if !ok {
		return id, policy.Agency{}, status.Error(codes.Unauthenticated, "no caller identity")
	}
	if id.Kind != mtls.KindAgency {
		return id, policy.Agency{}, status.Errorf(codes.PermissionDenied,
			"%s may not use the HubService: only agencies publish and query; auditors review decisions through the AuditService", id)
	}
	a, ok := s.policy.Agency(id.ID)
	if !ok {
		return id, a, status.Errorf(codes.PermissionDenied, "%s is not in the agency registry; ask the hub operator to register it", id)
	}
	return id, a, nil
}

// requireOwnList authenticates the caller as a registered agency and
// resolves the list reference of its request to one of its own lists.
func (s *Service) requireOwnList(ctx context.Context, ref string) (mtls.Identity, policy.Agency, string, error) {
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return id, a, "", err
	}
	name, err := resolveList(id, "list", ref)
	return id, a, name, err
}
