// Package quota enforces per-agency OPRF evaluation quotas at the key
// server: a token bucket (evaluations per second with a burst) and a daily
// cap. Any client can query the OPRF on guessed values, and a static-DH
// oracle must not be queried without bound, so the defaults are set to make
// enumerating a country's phone numbers take years, not hours.
package quota

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Limits are the quotas applied to every agency.
type Limits struct {
	// Rate is the sustained evaluations per second.
	Rate float64
	// Burst is the bucket size; it must be at least the maximum batch size.
	Burst int
	// Daily caps evaluations per agency per UTC day.
	Daily int
}

// DefaultLimits allow a large watchlist to be published in one sitting
// while keeping dictionary attacks impractical: 100,000 evaluations a day
// is 27 years for the 10^9 numbers of one mobile numbering plan.
func DefaultLimits() Limits { return Limits{Rate: 200, Burst: 8192, Daily: 100_000} }

// Validate names the first bad limit.
func (l Limits) Validate() error {
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("quota rate must be positive, got %v", l.Rate)
	case l.Burst <= 0:
		return fmt.Errorf("quota burst must be positive, got %d", l.Burst)
	case l.Daily <= 0:
		return fmt.Errorf("quota daily cap must be positive, got %d", l.Daily)
	}
	return nil
}

// ErrExceeded is matched by every *ExceededError.
var ErrExceeded = errors.New("quota: exceeded")

// ExceededError reports a refused request and when it may be retried.
type ExceededError struct {
	Reason     string
	RetryAfter time.Duration
}

// Error implements error.
func (e *ExceededError) Error() string {
	return fmt.Sprintf("quota exceeded: %s; retry after %s", e.Reason, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrExceeded) true.
func (e *ExceededError) Is(target error) bool { return target == ErrExceeded }

// Limiter tracks every agency's bucket and daily use. It is safe for
// concurrent use.
type Limiter struct {
	mu      sync.Mutex
	limits  Limits
	now     func() time.Time
	agents  map[string]*agencyState
	journal *Journal
}

type agencyState struct {
	tokens float64
	last   time.Time
	day    string
	used   int
}

// NewLimiter returns a limiter. If j is not nil, every grant and refusal is
// appended to it, and today's use already in it counts against the cap, so
// a restart does not reset anybody's daily quota.
func NewLimiter(l Limits, j *Journal, now func() time.Time) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	lim := &Limiter{limits: l, now: now, agents: map[string]*agencyState{}, journal: j}
	if j != nil {
		day := dayOf(now())
		for agency, used := range j.UsedOn(day) {
			lim.agents[agency] = &agencyState{tokens: float64(l.Burst), last: now(), day: day, used: used}
		}
	}
	return lim, nil
}

func dayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Limits returns the limits in force.
func (l *Limiter) Limits() Limits { return l.limits }

// Take charges n evaluations to agency, or refuses with an *ExceededError
// and charges nothing. With a journal, it answers only once the grant or
// refusal is synced to it; a journal write or sync failure refuses too: use
// that cannot be recorded for auditors is not granted.
func (l *Limiter) Take(agency string, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	day := dayOf(now)
	st := l.agents[agency]
	if st == nil {
		st = &agencyState{tokens: float64(l.limits.Burst), last: now, day: day}
		l.agents[agency] = st
	}
	if st.day != day {
		st.day, st.used = day, 0
	}
	st.tokens = min(float64(l.limits.Burst), st.tokens+now.Sub(st.last).Seconds()*l.limits.Rate)
	st.last = now

	var refusal *ExceededError
	switch {
	case n > l.limits.Burst:
		refusal = &ExceededError{Reason: fmt.Sprintf("batch of %d exceeds the burst of %d", n, l.limits.Burst), RetryAfter: time.Hour}
	case st.used+n > l.limits.Daily:
		midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		refusal = &ExceededError{
			Reason:     fmt.Sprintf("daily cap of %d evaluations reached (%d used today)", l.limits.Daily, st.used),
			RetryAfter: midnight.Sub(now),
		}
	case st.tokens < float64(n):
		wait := time.Duration((float64(n) - st.tokens) / l.limits.Rate * float64(time.Second))
		refusal = &ExceededError{
			Reason:     fmt.Sprintf("rate limit of %g evaluations per second", l.limits.Rate),
			RetryAfter: max(wait, time.Millisecond),
		}
	}
	if refusal != nil {
		if l.journal != nil {
			if err := l.journal.append(entry{Time: now.UTC(), Agency: agency, Type: typeRefusal, N: n, Reason: refusal.Reason}); err != nil {
				return fmt.Errorf("record quota refusal: %w", err)
			}
		}
		return refusal
	}
	if l.journal != nil {
		if err := l.journal.append(entry{Time: now.UTC(), Agency: agency, Type: typeGrant, N: n}); err != nil {
			return fmt.Errorf("record quota use: %w", err)
		}
	}
	st.tokens -= float64(n)
	st.used += n
	return nil
}
