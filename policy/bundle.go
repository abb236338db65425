package policy

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/util"
)

// embedded is the default bundle: the policies, their tests and data.json.
//
//go:embed *.rego data.json
var embedded embed.FS

// Queries of the decisions.
const (
	authzQuery      = "data.veilmatch.authz.decision"
	disclosureQuery = "data.veilmatch.disclosure.decision"
	// disclosuresQuery is the hub's: every counterparty list of an answer
	// in one evaluation.
	disclosuresQuery = "data.veilmatch.disclosure.decisions"
)

// sandboxDenied are the built-ins a policy may not call: they reach the
// network, read the clock or draw randomness, so decisions would stop being a
// function of the bundle and the input.
var sandboxDenied = []string{
	"http.send",
	"net.lookup_ip_addr",
	"time.now_ns",
	"opa.runtime",
	"rand.intn",
	"uuid.rfc4122",
	// These read the clock unless the policy passes a time.
	"io.jwt.decode_verify",
	"crypto.x509.parse_and_verify_certificates",
	"crypto.x509.parse_and_verify_certificates_with_options",
}

// capabilities returns this OPA version's capabilities without the
// sandboxDenied built-ins and with no network access.
var capabilities = sync.OnceValue(func() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return slices.Contains(sandboxDenied, b.Name)
	})
	caps.AllowNet = []string{}
	return caps
})

// file is one file of a bundle, named by its slash-separated path.
type file struct {
	name string
	data []byte
}

// bundleFS returns the bundle in dir, or the embedded one when dir is "".
func bundleFS(dir string) fs.FS {
	if dir == "" {
		return embedded
	}
	return os.DirFS(dir)
}

// readBundle reads the .rego, .json, .yaml and .yml files under fsys in
// lexical order, skipping entries whose names start with "." (editor and
// Kubernetes ConfigMap artefacts).
func readBundle(fsys fs.FS) ([]file, error) {
	var files []file
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isRego(name) && !isData(name) {
			return nil
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		files = append(files, file{name: name, data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return files, nil
}

func isRego(name string) bool { return path.Ext(name) == ".rego" }

func isTest(name string) bool { return strings.HasSuffix(name, "_test.rego") }

func isData(name string) bool {
	switch path.Ext(name) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// revision is the hex SHA-256 over the files' names and contents, in order,
// each length-prefixed so that no two bundles hash alike.
func revision(files []file) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s%d:", len(f.name), f.name, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parsedBundle is a bundle's modules and its data document.
type parsedBundle struct {
	modules  map[string]*ast.Module
	data     map[string]any
	registry registry
}

// registryDocument is the part of the data document the Go side reads.
type registryDocument struct {
	Veilmatch struct {
		Registry struct {
			Agencies map[string]struct {
				Role         string `json:"role"`
				Jurisdiction string `json:"jurisdiction"`
				Contact      string `json:"contact"`
			} `json:"agencies"`
			Vocabulary struct {
				Kinds      []string `json:"kinds"`
				Categories []string `json:"categories"`
				Roles      []string `json:"roles"`
			} `json:"vocabulary"`
			Purposes struct {
				ByRole  map[string][]string `json:"by_role"`
				AnyRole []string            `json:"any_role"`
			} `json:"purposes"`
		} `json:"registry"`
	} `json:"veilmatch"`
}

// parseBundle parses the modules (test modules only if withTests) and the one
// data document, which must sit at the bundle's root and is mounted at data.
func parseBundle(files []file, withTests bool) (*parsedBundle, error) {
	b := &parsedBundle{modules: map[string]*ast.Module{}}
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities(), ProcessAnnotation: true}
	var dataName string
	for _, f := range files {
		switch {
		case isRego(f.name):
			if isTest(f.name) && !withTests {
				continue
			}
			m, err := ast.ParseModuleWithOpts(f.name, string(f.data), opts)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", f.name, err)
			}
			b.modules[f.name] = m
		case strings.Contains(f.name, "/"):
			return nil, fmt.Errorf("data document %s: data documents must sit at the bundle's root", f.name)
		case dataName != "":
			return nil, fmt.Errorf("data documents %s and %s: a bundle has exactly one", dataName, f.name)
		default:
			dataName = f.name
			if err := util.Unmarshal(f.data, &b.data); err != nil {
				return nil, fmt.Errorf("parse %s: %w", f.name, err)
			}
			reg, err := parseRegistry(f.data)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", f.name, err)
			}
			b.registry = reg
		}
	}
	if dataName == "" {
		return nil, errors.New("no data document (data.json) at the bundle's root")
	}
	if len(b.modules) == 0 {
		return nil, errors.New("no .rego policies")
	}
	return b, nil
}

// registry is what the Go side reads of a data document: the agencies and
// the closed vocabulary.
type registry struct {
	agencies   map[string]Agency
	vocabulary Vocabulary
}

// wordRE is the shape of every vocabulary word.
var wordRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// parseRegistry reads veilmatch.registry from a data document and checks
// that the agencies, the vocabulary and the purposes agree with each other.
func parseRegistry(data []byte) (registry, error) {
	var doc registryDocument
	if err := util.Unmarshal(data, &doc); err != nil {
		return registry{}, err
	}
	r := doc.Veilmatch.Registry
	v := Vocabulary{
		Kinds: slices.Sorted(slices.Values(r.Vocabulary.Kinds)), Categories: slices.Sorted(slices.Values(r.Vocabulary.Categories)),
		Roles: slices.Sorted(slices.Values(r.Vocabulary.Roles)), purposes: map[string][]string{},
	}
	for _, w := range []struct {
		field string
		words []string
	}{{"kinds", v.Kinds}, {"categories", v.Categories}, {"roles", v.Roles}, {"purposes.any_role", r.Purposes.AnyRole}} {
		if len(w.words) == 0 && w.field != "purposes.any_role" {
			return registry{}, fmt.Errorf("veilmatch.registry.vocabulary.%s is empty", w.field)
		}
		for i, word := range w.words {
			if !wordRE.MatchString(word) {
				return registry{}, fmt.Errorf("veilmatch.registry.%s[%d]: %q is not a word (%s)", w.field, i, word, wordRE)
			}
			if slices.Contains(w.words[:i], word) {
				return registry{}, fmt.Errorf("veilmatch.registry.%s: %q is listed twice", w.field, word)
			}
		}
	}
	for role, ps := range r.Purposes.ByRole {
		if !slices.Contains(v.Roles, role) {
			return registry{}, fmt.Errorf("veilmatch.registry.purposes.by_role: role %q is not in the vocabulary's roles %v", role, v.Roles)
		}
		for i, p := range ps {
			if !wordRE.MatchString(p) {
				return registry{}, fmt.Errorf("veilmatch.registry.purposes.by_role.%s[%d]: %q is not a word (%s)", role, i, p, wordRE)
			}
		}
	}
	for _, role := range v.Roles {
		v.purposes[role] = slices.Compact(slices.Sorted(slices.Values(slices.Concat(r.Purposes.ByRole[role], r.Purposes.AnyRole))))
	}
	agencies := make(map[string]Agency, len(r.Agencies))
	for id, a := range r.Agencies {
		if !slices.Contains(v.Roles, a.Role) {
			return registry{}, fmt.Errorf("agency %q: role %q is not in the vocabulary's roles %v", id, a.Role, v.Roles)
		}
		agencies[id] = Agency{ID: id, Role: a.Role, Jurisdiction: a.Jurisdiction, Contact: a.Contact}
	}
	if len(agencies) == 0 {
		return registry{}, errors.New("veilmatch.registry.agencies is empty")
	}
	return registry{agencies: agencies, vocabulary: v}, nil
}

// newCompiler returns a compiler limited to the sandbox's capabilities, so a
// policy that calls a denied built-in fails to compile.
func newCompiler(printStatements bool) *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithEnablePrintStatements(printStatements)
}

func compile(modules map[string]*ast.Module) (*ast.Compiler, error) {
	c := newCompiler(false)
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("compile: %w", c.Errors)
	}
	return c, nil
}

// newRego returns the options every evaluation shares: the compiled bundle,
// its data, the sandbox's capabilities and built-in errors as errors.
func newRego(c *ast.Compiler, store storage.Store, query string) *rego.Rego {
	return rego.New(
		rego.Query(query),
		rego.Compiler(c),
		rego.Store(store),
		rego.Capabilities(capabilities()),
		rego.StrictBuiltinErrors(true),
	)
}

// queries are the decisions, prepared once per bundle and data.
type queries struct {
	authz, disclosure, disclosures rego.PreparedEvalQuery
}

func prepare(ctx context.Context, c *ast.Compiler, store storage.Store) (queries, error) {
	var q queries
	var err error
	if q.authz, err = newRego(c, store, authzQuery).PrepareForEval(ctx); err != nil {
		return q, fmt.Errorf("prepare %s: %w", authzQuery, err)
	}
	if q.disclosure, err = newRego(c, store, disclosureQuery).PrepareForEval(ctx); err != nil {
		return q, fmt.Errorf("prepare %s: %w", disclosureQuery, err)
	}
	if q.disclosures, err = newRego(c, store, disclosuresQuery).PrepareForEval(ctx); err != nil {
		return q, fmt.Errorf("prepare %s: %w", disclosuresQuery, err)
	}
	return q, nil
}
