package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// Options configure an [Engine].
type Options struct {
	// Dir is a policy bundle directory to use instead of the embedded bundle.
	Dir string
	// Logger receives [Engine.Watch]'s reload outcomes; nil discards them.
	Logger *slog.Logger
}

// Engine evaluates a policy bundle. It is safe for concurrent use: each call
// works on the bundle that was current when it started, and [Engine.Reload]
// swaps bundles atomically.
type Engine struct {
	dir    string
	logger *slog.Logger
	reload sync.Mutex // serializes Reload
	state  atomic.Pointer[state]
}

// state is one loaded, validated bundle.
type state struct {
	revision string
	compiler *ast.Compiler
	store    storage.Store
	queries  queries
	registry registry
}

// New loads, compiles and validates the bundle in opts.Dir, or the embedded
// bundle, and refuses to start if any step fails.
func New(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{dir: opts.Dir, logger: opts.Logger}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	files, err := readBundle(bundleFS(e.dir))
	if err != nil {
		return nil, fmt.Errorf("policy: load %s: %w", e.source(), err)
	}
	s, err := load(ctx, files)
	if err != nil {
		return nil, fmt.Errorf("policy: load %s: %w", e.source(), err)
	}
	e.state.Store(s)
	return e, nil
}

func (e *Engine) source() string {
	if e.dir == "" {
		return "embedded bundle"
	}
	return e.dir
}

// load compiles files, prepares both decisions and validates them.
func load(ctx context.Context, files []file) (*state, error) {
	b, err := parseBundle(files, false)
	if err != nil {
		return nil, err
	}
	c, err := compile(b.modules)
	if err != nil {
		return nil, err
	}
	// The store hands evaluations the data document as AST values instead
	// of converting it at every read (a few percent of each decision).
	store := inmem.NewFromObjectWithOpts(b.data, inmem.OptReturnASTValuesOnRead(true))
	q, err := prepare(ctx, c, store)
	if err != nil {
		return nil, err
	}
	if err := validate(ctx, c, q); err != nil {
		return nil, err
	}
	return &state{revision: revision(files), compiler: c, store: store, queries: q, registry: b.registry}, nil
}

// Authorize decides whether r may proceed. Any error, undefined or malformed
// decision denies; the error is returned too.
func (e *Engine) Authorize(ctx context.Context, r Request) (Authorization, error) {
	s := e.state.Load()
	a, err := s.queries.authorize(ctx, r)
	if err != nil {
		return Authorization{
			Reasons:  []string{"the policy could not decide; the hub's log has the cause"},
			Rules:    []string{RuleEngineError},
			MaxLevel: LevelNone,
			Revision: s.revision,
		}, fmt.Errorf("policy: authorize %s: %w", r.Action, err)
	}
	a.Revision = s.revision
	return a, nil
}

// Disclose decides what r's requester may learn about its entries that
// each counterparty list also holds, in one evaluation: the i-th disclosure
// is about cps[i]. Any error, undefined or malformed decision gives
// [LevelNone] with rule engine.error, for the lists it concerns (all of
// them when the evaluation itself failed); the error is returned too.
func (e *Engine) Disclose(ctx context.Context, r Request, cps []Counterparty) ([]Disclosure, error) {
	s := e.state.Load()
	ds, err := s.queries.disclose(ctx, r, cps)
	for i := range ds {
		ds[i].Revision = s.revision
	}
	if err != nil {
		return ds, fmt.Errorf("policy: disclose: %w", err)
	}
	return ds, nil
}

// Agency returns the registry entry of agency id.
func (e *Engine) Agency(id string) (Agency, bool) {
	a, ok := e.state.Load().registry.agencies[id]
	return a, ok
}

// Vocabulary returns the current bundle's closed vocabulary.
func (e *Engine) Vocabulary() Vocabulary {
	return e.state.Load().registry.vocabulary
}

// Revision identifies the current bundle: the hex SHA-256 over its files'
// names and contents, in name order.
func (e *Engine) Revision() string {
	return e.state.Load().revision
}

// Reload re-reads the bundle and, if it changed and passes validation, makes
// it current. On failure the current bundle stays and the error is returned.
func (e *Engine) Reload(ctx context.Context) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	files, err := readBundle(bundleFS(e.dir))
	if err != nil {
		return fmt.Errorf("policy: reload %s: %w", e.source(), err)
	}
	if revision(files) == e.Revision() {
		return nil
	}
	s, err := load(ctx, files)
	if err != nil {
		return fmt.Errorf("policy: reload %s: %w", e.source(), err)
	}
	e.state.Store(s)
	return nil
}

// watchSettle is how long Watch waits after the last change in the bundle
// directory before reloading, so that an editor's or a deployment's burst
// of writes leads to one reload.
const watchSettle = 250 * time.Millisecond

// Watch reloads the bundle whenever a file in Options.Dir changes, logging
// each outcome, until ctx is done. With the embedded bundle it returns at once.
func (e *Engine) Watch(ctx context.Context) {
	if e.dir == "" {
		e.logger.InfoContext(ctx, "policy watch: embedded bundle, nothing to watch")
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		e.logger.ErrorContext(ctx, "policy watch: start", "dir", e.dir, "err", err)
		return
	}
	defer w.Close()
	if err := watchTree(w, e.dir); err != nil {
		e.logger.ErrorContext(ctx, "policy watch: start", "dir", e.dir, "err", err)
		return
	}
	e.logger.InfoContext(ctx, "policy watch: started", "dir", e.dir, "revision", e.Revision())
	var settled <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := watchTree(w, ev.Name); err != nil {
						e.logger.WarnContext(ctx, "policy watch: new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			settled = time.After(watchSettle)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			e.logger.WarnContext(ctx, "policy watch: watcher error", "dir", e.dir, "err", err)
		case <-settled:
			settled = nil
			old := e.Revision()
			if err := e.Reload(ctx); err != nil {
				e.logger.ErrorContext(ctx, "policy watch: reload failed, keeping current bundle", "revision", old, "err", err)
			} else if rev := e.Revision(); rev != old {
				e.logger.InfoContext(ctx, "policy watch: reloaded", "old_revision", old, "revision", rev)
			}
		}
	}
}

// watchTree adds dir and its subdirectories, except hidden ones, to w.
func watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		return w.Add(p)
	})
}

// EvalResult is the outcome of [Engine.Eval].
type EvalResult struct {
	Revision string
	Defined  bool            // false: the query is undefined for the input
	Results  json.RawMessage // OPA's result set: [{"expressions": [...], "bindings": {...}}]
}

// Eval evaluates an arbitrary query against the current bundle, in the same
// sandbox as the decisions, with input as a JSON document (none if empty).
// It is a dry run for operators; the hub uses Authorize and Disclose.
func (e *Engine) Eval(ctx context.Context, query string, input []byte) (EvalResult, error) {
	s := e.state.Load()
	r := newRego(s.compiler, s.store, query)
	pq, err := r.PrepareForEval(ctx)
	if err != nil {
		return EvalResult{}, fmt.Errorf("policy: eval %q: %w", query, err)
	}
	var opts []rego.EvalOption
	if len(input) > 0 {
		var v any
		if err := util.UnmarshalJSON(input, &v); err != nil {
			return EvalResult{}, fmt.Errorf("policy: eval %q: parse input: %w", query, err)
		}
		opts = append(opts, rego.EvalInput(v))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		return EvalResult{}, fmt.Errorf("policy: eval %q: %w", query, err)
	}
	if rs == nil {
		rs = rego.ResultSet{}
	}
	raw, err := json.Marshal(rs)
	if err != nil {
		return EvalResult{}, fmt.Errorf("policy: eval %q: encode result: %w", query, err)
	}
	return EvalResult{Revision: s.revision, Defined: len(rs) > 0, Results: raw}, nil
}

// DryRunResult is one decision of the policy for an input document, as
// [Engine.DryRun] reports it.
type DryRunResult struct {
	// Query is the query evaluated; Revision the bundle that answered.
	Query, Revision string
	// Defined is false when the query is undefined for the input: the hub
	// would deny.
	Defined bool
	// Authorization or Disclosure holds the decision, decoded and checked
	// as the hub does, when Query is one of the hub's two decisions;
	// Malformed then says why the hub would fail closed instead.
	Authorization *Authorization
	Disclosure    *Disclosure
	Malformed     error
	// Value is the decision's JSON.
	Value json.RawMessage
}

// DryRun evaluates query against input as the hub would: with no query,
// the disclosure decision for an input that names a counterparty, else the
// authorization decision. It is for operators; the hub uses Authorize and
// Disclose.
func (e *Engine) DryRun(ctx context.Context, query string, input []byte) (DryRunResult, error) {
	if query == "" {
		var probe struct {
			Counterparty json.RawMessage `json:"counterparty"`
		}
		if err := json.Unmarshal(input, &probe); err != nil {
			return DryRunResult{}, fmt.Errorf("policy: dry run: parse input: %w", err)
		}
		query = authzQuery
		if probe.Counterparty != nil {
			query = disclosureQuery
		}
	}
	res, err := e.Eval(ctx, query, input)
	if err != nil {
		return DryRunResult{}, err
	}
	out := DryRunResult{Query: query, Revision: res.Revision, Defined: res.Defined}
	var rs rego.ResultSet
	if err := json.Unmarshal(res.Results, &rs); err != nil {
		return out, fmt.Errorf("policy: dry run: decode result: %w", err)
	}
	if !out.Defined {
		return out, nil
	}
	if out.Value, err = value(rs); err != nil {
		out.Malformed = err
		return out, nil
	}
	switch query {
	case authzQuery:
		var r authzResult
		if out.Malformed = decode(out.Value, &r); out.Malformed == nil {
			a, err := r.authorization()
			out.Authorization, out.Malformed = &a, err
		}
	case disclosureQuery:
		var r disclosureResult
		if out.Malformed = decode(out.Value, &r); out.Malformed == nil {
			d, err := r.disclosure()
			out.Disclosure, out.Malformed = &d, err
		}
	}
	if out.Malformed != nil {
		out.Authorization, out.Disclosure = nil, nil
	}
	return out, nil
}
