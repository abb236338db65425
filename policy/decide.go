package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
)

// agencyInput, listInput, requestInput and disclosureInput are the policy's
// input documents.
type agencyInput struct {
	ID           string `json:"id"`
	Role         string `json:"role"`
	Jurisdiction string `json:"jurisdiction"`
	Contact      string `json:"contact,omitempty"`
}

type listInput struct {
	Name               string   `json:"name"`
	Owner              string   `json:"owner,omitempty"`
	Kind               string   `json:"kind"`
	Category           string   `json:"category"`
	Jurisdiction       string   `json:"jurisdiction"`
	ExpiresAt          string   `json:"expires_at"`
	VictimConsentRoles []string `json:"victim_consent_roles"`
	NGOVisible         bool     `json:"ngo_visible"`
}

type requestInput struct {
	Action    string      `json:"action"`
	Time      string      `json:"time"`
	Purpose   string      `json:"purpose"`
	CaseRef   string      `json:"case_ref"`
	Requester agencyInput `json:"requester"`
	List      *listInput  `json:"list,omitempty"`
}

type counterpartyInput struct {
	Agency agencyInput `json:"agency"`
	List   listInput   `json:"list"`
}

// disclosureInput asks about one counterparty list (decision), and
// disclosuresInput about several (decisions), each in the form of one
// disclosureItem.
type disclosureInput struct {
	requestInput
	disclosureItem
}

type disclosureItem struct {
	Counterparty      counterpartyInput `json:"counterparty"`
	DisclosureGranted bool              `json:"disclosure_granted"`
}

type disclosuresInput struct {
	requestInput
	Counterparties []disclosureItem `json:"counterparties"`
}

func newDisclosureItem(c Counterparty) disclosureItem {
	return disclosureItem{
		Counterparty:      counterpartyInput{Agency: newAgencyInput(c.Agency), List: newListInput(c.List)},
		DisclosureGranted: c.Granted,
	}
}

func newAgencyInput(a Agency) agencyInput {
	return agencyInput(a)
}

func newListInput(l List) listInput {
	in := listInput{
		Name:               l.Name,
		Owner:              l.Owner,
		Kind:               l.Kind,
		Category:           l.Category,
		Jurisdiction:       l.Jurisdiction,
		VictimConsentRoles: l.VictimConsentRoles,
		NGOVisible:         l.NGOVisible,
	}
	if in.VictimConsentRoles == nil {
		in.VictimConsentRoles = []string{}
	}
	if !l.ExpiresAt.IsZero() {
		in.ExpiresAt = l.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	return in
}

// errNoTime rejects a request without a time: list expiry is judged against it.
var errNoTime = errors.New("request has no time")

func newRequestInput(r Request) (requestInput, error) {
	if r.Time.IsZero() {
		return requestInput{}, errNoTime
	}
	in := requestInput{
		Action:    r.Action,
		Time:      r.Time.UTC().Format(time.RFC3339Nano),
		Purpose:   r.Purpose,
		CaseRef:   r.CaseRef,
		Requester: newAgencyInput(r.Requester),
	}
	if r.List != nil {
		l := newListInput(*r.List)
		in.List = &l
	}
	return in, nil
}

// authzResult and disclosureResult are the decisions' documents; pointer
// fields tell a missing member from a zero one.
type authzResult struct {
	Allow    *bool    `json:"allow"`
	Reasons  []string `json:"reasons"`
	Rules    []string `json:"rules"`
	MaxLevel *Level   `json:"max_level"`
}

type disclosureResult struct {
	Level          *Level   `json:"level"`
	Rules          []string `json:"rules"`
	Class          *string  `json:"class"`
	LiaisonContact *string  `json:"liaison_contact"`
	Contact        *string  `json:"contact"`
}

// errMalformed marks a decision whose shape or content breaks the contract.
var errMalformed = errors.New("malformed decision")

// errUndefined reports a query with no result: the hub denies.
var errUndefined = errors.New("decision undefined")

// eval runs a prepared query and decodes its single value into out, refusing
// undefined results, unknown members and values of the wrong type.
func eval(ctx context.Context, q rego.PreparedEvalQuery, input any, out any) error {
	rs, err := q.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	raw, err := value(rs)
	if err != nil {
		return err
	}
	return decode(raw, out)
}

// value returns the single value of a result set as JSON.
func value(rs rego.ResultSet) (json.RawMessage, error) {
	if len(rs) == 0 {
		return nil, errUndefined
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("%w: %d results", errMalformed, len(rs))
	}
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return raw, nil
}

// decode decodes a decision's JSON into out, refusing unknown members and
// values of the wrong type.
func decode(raw json.RawMessage, out any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
	return nil
}

// authorize evaluates the authz decision for r.
func (q queries) authorize(ctx context.Context, r Request) (Authorization, error) {
	in, err := newRequestInput(r)
	if err != nil {
		return Authorization{}, err
	}
	var res authzResult
	if err := eval(ctx, q.authz, in, &res); err != nil {
		return Authorization{}, err
	}
	return res.authorization()
}

// authorization checks the decision's contract and returns it.
func (res authzResult) authorization() (Authorization, error) {
	switch {
	case res.Allow == nil || res.MaxLevel == nil:
		return Authorization{}, fmt.Errorf("%w: allow or max_level missing", errMalformed)
	case len(res.Rules) == 0:
		return Authorization{}, fmt.Errorf("%w: no rule ids", errMalformed)
	case !*res.Allow && *res.MaxLevel != LevelNone:
		return Authorization{}, fmt.Errorf("%w: denied with max_level %s", errMalformed, *res.MaxLevel)
	}
	return Authorization{Allow: *res.Allow, Reasons: res.Reasons, Rules: res.Rules, MaxLevel: *res.MaxLevel}, nil
}

// disclose evaluates, in one evaluation of the decisions query, the
// disclosure decision for r about each of cps. It returns one disclosure
// per counterparty, in order: one the evaluation did not decide, or whose
// decision breaks the contract, is level none with rule engine.error, and
// err says why, naming the list.
func (q queries) disclose(ctx context.Context, r Request, cps []Counterparty) ([]Disclosure, error) {
	ds := make([]Disclosure, len(cps))
	for i := range ds {
		ds[i] = Disclosure{Level: LevelNone, Rules: []string{RuleEngineError}}
	}
	if len(cps) == 0 {
		return ds, nil
	}
	req, err := newRequestInput(r)
	if err != nil {
		return ds, err
	}
	in := disclosuresInput{requestInput: req, Counterparties: make([]disclosureItem, len(cps))}
	for i, c := range cps {
		in.Counterparties[i] = newDisclosureItem(c)
	}
	var res []disclosureResult
	if err := eval(ctx, q.disclosures, in, &res); err != nil {
		return ds, err
	}
	if len(res) != len(cps) {
		return ds, fmt.Errorf("%w: %d decisions for %d counterparty lists", errMalformed, len(res), len(cps))
	}
	var errs []error
	for i, d := range res {
		if dd, err := d.disclosure(); err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", cps[i].List.Name, err))
		} else {
			ds[i] = dd
		}
	}
	return ds, errors.Join(errs...)
}

// discloseOne evaluates the single-list decision query for r about c.
func (q queries) discloseOne(ctx context.Context, r Request, c Counterparty) (Disclosure, error) {
	req, err := newRequestInput(r)
	if err != nil {
		return Disclosure{}, err
	}
	var res disclosureResult
	if err := eval(ctx, q.disclosure, disclosureInput{requestInput: req, disclosureItem: newDisclosureItem(c)}, &res); err != nil {
		return Disclosure{}, err
	}
	return res.disclosure()
}

// disclosure checks the decision's contract and returns it.
func (res disclosureResult) disclosure() (Disclosure, error) {
	if res.Level == nil || res.Class == nil || res.LiaisonContact == nil || res.Contact == nil {
		return Disclosure{}, fmt.Errorf("%w: level, class, liaison_contact or contact missing", errMalformed)
	}
	d := Disclosure{Level: *res.Level, Rules: res.Rules, Class: *res.Class, LiaisonContact: *res.LiaisonContact, Contact: *res.Contact}
	if err := checkDisclosure(d); err != nil {
		return Disclosure{}, err
	}
	return d, nil
}

// MaxClassLen bounds a counterparty class: it travels in match references
// and the decision log.
const MaxClassLen = 129

// checkDisclosure enforces, whatever the policy says, that a decision names
// its rules and discloses no more than its level allows.
func checkDisclosure(d Disclosure) error {
	switch {
	case len(d.Rules) == 0:
		return fmt.Errorf("%w: no rule ids", errMalformed)
	case d.Level != LevelFull && d.Contact != "":
		return fmt.Errorf("%w: contact at level %s", errMalformed, d.Level)
	case d.Level.Rank() < LevelFlag.Rank() && d.LiaisonContact != "":
		return fmt.Errorf("%w: liaison contact at level %s", errMalformed, d.Level)
	case d.Level == LevelNone && d.Class != "":
		return fmt.Errorf("%w: class at level none", errMalformed)
	case len(d.Class) > MaxClassLen:
		return fmt.Errorf("%w: class of %d bytes, more than %d", errMalformed, len(d.Class), MaxClassLen)
	}
	return nil
}
