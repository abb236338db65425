package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Results of a policy decision.
const (
	ResultAllowed = "allowed"
	ResultRefused = "refused"
)

// Actions a record may name: what an agency asked the hub (also the action
// the policy authorizes), and what the hub and key server did on their own.
const (
	ActionOverlaps          = "overlaps"
	ActionCheck             = "check"
	ActionPublish           = "publish"
	ActionDelete            = "delete"
	ActionRequestDisclosure = "request_disclosure"
	ActionApproveDisclosure = "approve_disclosure"
	ActionRefuseDisclosure  = "refuse_disclosure"
	// ActionAlert delivers standing matches (or retractions) to a watching
	// agency; ActionRetract and ActionUnretract withdraw an entry of a list
	// and undo that.
	ActionAlert     = "alert"
	ActionRetract   = "retract"
	ActionUnretract = "unretract"
	// ActionExpire erases a list at the end of its retention.
	ActionExpire = "expire"
	// ActionKeyEpochs records the keys the key server serves.
	ActionKeyEpochs = "key_epochs"
	// ActionQuotaUsage and ActionQuotaRefusal record the key server's use.
	ActionQuotaUsage   = "quota_usage"
	ActionQuotaRefusal = "quota_refusal"
)

// Actions lists every action, in the order above.
var Actions = []string{
	ActionOverlaps, ActionCheck, ActionPublish, ActionDelete, ActionRequestDisclosure, ActionApproveDisclosure,
	ActionRefuseDisclosure, ActionAlert, ActionRetract, ActionUnretract, ActionExpire, ActionKeyEpochs,
	ActionQuotaUsage, ActionQuotaRefusal,
}

// Record is one policy decision in the audit log. Its canonical encoding
// ([Record.Marshal]) is the Merkle leaf.
type Record struct {
	// Index is the record's position (leaf index) in the log.
	Index uint64 `json:"index"`
	// Time is when the decision was taken; it is encoded in UTC.
	Time time.Time `json:"time"`
	// DecisionID identifies the decision across services.
	DecisionID string `json:"decision_id"`
	// Caller is the SPIFFE ID of the caller.
	Caller string `json:"caller"`
	// Agency is the caller's agency id.
	Agency string `json:"agency"`
	// Action is what was asked: overlaps, check, publish, delete,
	// request_disclosure, approve_disclosure, refuse_disclosure, quota_usage,
	// quota_refusal, and so on.
	Action string `json:"action"`
	// Result is ResultAllowed or ResultRefused.
	Result string `json:"result"`
	// Reason explains a refusal or qualifies an allowance.
	Reason string `json:"reason"`
	// Purpose is the purpose stated by the caller.
	Purpose string `json:"purpose"`
	// CaseRef is the case reference stated by the caller.
	CaseRef string `json:"case_ref"`
	// Lists are the ids ("owner/name") of the lists involved.
	Lists []string `json:"lists"`
	// Outcomes are the disclosure levels and counts per counterparty class.
	Outcomes []Outcome `json:"outcomes"`
	// Rules are the ids of the policy rules that fired.
	Rules []string `json:"rules"`
	// PolicyRevision identifies the policy bundle that decided.
	PolicyRevision string `json:"policy_revision"`
	// Details holds further facts, such as quota numbers.
	Details map[string]string `json:"details"`
}

// Outcome is what a decision disclosed about one class of counterparty.
type Outcome struct {
	// Class is the counterparty class.
	Class string `json:"class"`
	// Level is the disclosure level (full, flag, count or none).
	Level string `json:"level"`
	// Entries is how many entries matched that class.
	Entries uint64 `json:"entries"`
}

// Marshal returns the canonical encoding of r: compact JSON with the fields
// in declaration order, every field present (empty collections as [] and
// {}), the time in UTC with RFC 3339 nanosecond precision, no HTML escaping
// and no trailing newline. These bytes are the Merkle leaf.
func (r Record) Marshal() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.Time = r.Time.UTC()
	if r.Lists == nil {
		r.Lists = []string{}
	}
	if r.Outcomes == nil {
		r.Outcomes = []Outcome{}
	}
	if r.Rules == nil {
		r.Rules = []string{}
	}
	if r.Details == nil {
		r.Details = map[string]string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("audit: encode record %d: %w", r.Index, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// validate checks the fields without which a record is meaningless.
func (r Record) validate() error {
	switch {
	case r.Time.IsZero():
		return fmt.Errorf("audit: record %d: missing time", r.Index)
	case r.Action == "":
		return fmt.Errorf("audit: record %d: missing action", r.Index)
	case r.Result != ResultAllowed && r.Result != ResultRefused:
		return fmt.Errorf("audit: record %d: result must be %q or %q", r.Index, ResultAllowed, ResultRefused)
	}
	return nil
}

// ParseRecord decodes a record and accepts it only if data is exactly its
// canonical encoding, so that a leaf has one and only one meaning.
func ParseRecord(data []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("audit: decode record: %w", err)
	}
	canon, err := r.Marshal()
	if err != nil {
		return Record{}, err
	}
	if !bytes.Equal(canon, data) {
		return Record{}, ErrNotCanonical
	}
	return r, nil
}
