// Package storetest is the conformance suite for store.Store
// implementations. Every implementation runs it from its own tests, with
// a store that also implements Raw:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return raw{openTemp(t)} })
//	}
package storetest

import (
	"testing"

	"github.com/veilmatch/veilmatch/server/store"
)

// Run runs the conformance suite. open must return a new, empty store,
// which implements Raw, on every call; Run closes it when the subtest
// ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		// Uploads and commits (upload.go).
		{"PublishAndGet", testPublishAndGet},
		{"EmptyUpload", testEmptyUpload},
		{"BatchIdempotence", testBatchIdempotence},
		{"Resume", testResume},
		{"CommitIdempotence", testCommitIdempotence},
		{"Incomplete", testIncomplete},
		{"CommitReplaces", testCommitReplaces},
		{"CommitAtomicForReaders", testCommitAtomicForReaders},
		{"ConcurrentUploads", testConcurrentUploads},
		{"PurgeUploads", testPurgeUploads},

		// Lists, joins, deletion and expiry (list.go).
		{"ListingOrder", testListingOrder},
		{"UncommittedInvisible", testUncommittedInvisible},
		{"Overlaps", testOverlaps},
		{"OverlapsCallbackError", testOverlapsCallbackError},
		{"Check", testCheck},
		{"CheckWritesNothing", testCheckWritesNothing},
		{"DeleteList", testDeleteList},
		{"ExpiredLists", testExpiredLists},
		{"NotFound", testNotFound},
		{"Invalid", testInvalid},
		{"ContextCanceled", testContextCanceled},

		// The decision log and check use (log.go).
		{"DecisionLog", testDecisionLog},
		{"RecordWithAction", testRecordWithAction},
		{"AppendDecisions", testAppendDecisions},
		{"CheckUse", testCheckUse},

		// Disclosure requests and notices (disclosure.go).
		{"DisclosureRequests", testDisclosureRequests},

		// Key epochs (epochs.go).
		{"KeyEpochs", testKeyEpochs},

		// Standing matches, their events and retractions (matches.go).
		{"MatchesAtCommit", testMatchesAtCommit},
		{"MatchesScope", testMatchesScope},
		{"MatchesErasure", testMatchesErasure},
		{"MatchesCommitRetry", testMatchesCommitRetry},
		{"MatchEventsCursor", testMatchEventsCursor},
		{"Retract", testRetract},
		{"RetractErrors", testRetractErrors},
		{"Unretract", testUnretract},
		{"RetractionsFollowVersions", testRetractionsFollowVersions},
		{"RepublishKeepsAlerts", testRepublishKeepsAlerts},
		{"MatchesCanceled", testMatchesCanceled},
		{"NearDuplicates", testNearDuplicates},
		{"MatchSets", testMatchSets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}
