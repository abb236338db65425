package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test.
type TestResult struct {
	Name     string // e.g. data.veilmatch.authz_test.test_research_caps_max_level
	Location string // file:line
	Pass     bool
	Skip     bool
	Err      string // why the test errored, if it did
	Output   string // what the test printed
	Duration time.Duration
}

// TestReport is the outcome of [RunTests].
type TestReport struct {
	Revision string
	Results  []TestResult // sorted by name
	Passed   int
	Failed   int // failed or errored
	Skipped  int
}

// OK reports whether tests ran and none failed.
func (r TestReport) OK() bool { return r.Failed == 0 && r.Passed > 0 }

// RunTests runs the bundle's *_test.rego tests with OPA's tester, in the same
// sandbox as the engine, on the bundle in dir or the embedded one if dir is
// "". The error reports a bundle that could not be loaded or compiled;
// failing tests are in the report.
func RunTests(ctx context.Context, dir string) (TestReport, error) {
	source := dir
	if source == "" {
		source = "embedded bundle"
	}
	files, err := readBundle(bundleFS(dir))
	if err != nil {
		return TestReport{}, fmt.Errorf("policy: test %s: %w", source, err)
	}
	b, err := parseBundle(files, true)
	if err != nil {
		return TestReport{}, fmt.Errorf("policy: test %s: %w", source, err)
	}
	store := inmem.NewFromObject(b.data)
	txn, err := store.NewTransaction(ctx, storage.TransactionParams{})
	if err != nil {
		return TestReport{}, fmt.Errorf("policy: test %s: %w", source, err)
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler(true)).
		SetStore(store).
		SetModules(b.modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		RunTests(ctx, txn)
	if err != nil {
		return TestReport{}, fmt.Errorf("policy: test %s: %w", source, err)
	}
	report := TestReport{Revision: revision(files)}
	for r := range ch {
		res := TestResult{
			Name:     r.Package + "." + r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Output:   string(r.Output),
			Duration: r.Duration,
		}
		if r.Location != nil {
			res.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		if r.Error != nil {
			res.Err = r.Error.Error()
		}
		switch {
		case res.Pass:
			report.Passed++
		case res.Skip:
			report.Skipped++
		default:
			report.Failed++
		}
		report.Results = append(report.Results, res)
	}
	if err := ctx.Err(); err != nil {
		return report, fmt.Errorf("policy: test %s: %w", source, err)
	}
	slices.SortFunc(report.Results, func(a, b TestResult) int { return cmp.Compare(a.Name, b.Name) })
	return report, nil
}
