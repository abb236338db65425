package hub

import (
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
)

var (
	listNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	uploadIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	roleRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// kinds are the identifier kinds the hub accepts.
var kinds = map[string]bool{"phone": true, "email": true, "pdq": true, "md5": true, "sha1": true, "sha256": true}

// MaxCheckTokens bounds one check request.
const MaxCheckTokens = 100_000

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// resolveList turns a list reference into the caller's own list name. A
// reference is a list name, or owner/name; naming another owner's list is
// refused: agencies may only read, query and delete their own lists.
func resolveList(caller mtls.Identity, field, ref string) (string, error) {
	name := ref
	if owner, n, ok := strings.Cut(ref, "/"); ok {
		if owner != caller.ID {
			return "", status.Errorf(codes.PermissionDenied, "%s: list %q belongs to %s; agencies may only use their own lists", field, ref, owner)
		}
		name = n
	}
	if !listNameRE.MatchString(name) {
		return "", invalid("%s: %q is not a list name (1-128 letters, digits, '.', '_' or '-')", field, ref)
	}
	return name, nil
}

func checkKind(field, kind string) error {
	if !kinds[kind] {
		return invalid("%s: unknown identifier kind %q (want phone, email, pdq, md5, sha1 or sha256)", field, kind)
	}
	return nil
}

func checkKeyID(field, id string) error {
	if !oprf.ValidKeyID(id) {
		return invalid("%s: %q is not a key id", field, id)
	}
	return nil
}

func checkRoles(field string, roles []string) error {
	for i, r := range roles {
		if !roleRE.MatchString(r) {
			return invalid("%s[%d]: %q is not a role name", field, i, r)
		}
	}
	return nil
}

func checkUploadID(field, id string) error {
	if !uploadIDRE.MatchString(id) {
		return invalid("%s: upload id must be 8-64 letters, digits, '_' or '-'", field)
	}
	return nil
}

func checkCategory(field, c string) error {
	if !categoryRE.MatchString(c) {
		return invalid("%s: %q is not a category (lower-case letters, digits and '_', for example suspect, victim, missing_person)", field, c)
	}
	return nil
}
