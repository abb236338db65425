package audit

// What the hub's AuditService and the auditor's tools agree on beyond the
// protobuf messages: page sizes and the reasons of its structured errors.

// Page sizes of ListDecisions.
const (
	// DefaultPageSize is the page size when the request names none.
	DefaultPageSize = 100
	// MaxPageSize bounds the page size; larger requests are clamped.
	MaxPageSize = 1000
)

// MaxPageBytes bounds the encoded size of a ListDecisions page: a page
// ends before the decision that would take it past MaxPageBytes, so that
// pages of large records stay well within the message limit. A page always
// holds at least one decision, however large, so that paging makes
// progress.
const MaxPageBytes = 4 << 20

// ReasonRecordMissing is the google.rpc.ErrorInfo reason of the DATA_LOSS
// status returned for a record that the log's size says exists but the
// store cannot return. Its metadata key "index" names the record.
const ReasonRecordMissing = "RECORD_MISSING"

// ReasonRecordTooLarge is the google.rpc.ErrorInfo reason of the
// RESOURCE_EXHAUSTED status returned for a record too large to be sent in
// any response. Its metadata key "index" names the record.
const ReasonRecordTooLarge = "RECORD_TOO_LARGE"
