package relay

import "time"

// maxBlockedKeys bounds the keys a claim skips (the check is linear in them).
const maxBlockedKeys = 1000

// blockedKeys remembers, for a short while, keys whose earlier rows another
// relay holds or that back off after a failed publish. Claims skip them, so
// that a blocked key with a large backlog cannot fill every batch while the
// other keys wait. It is only an optimisation: the claim's per-key check keeps
// the order whether or not a key is listed. Used by the claimer only.
type blockedKeys map[string]time.Time

// blockedKeyTTL is how long a blocked key is skipped: one poll interval, at
// most 100ms. A key another relay holds is usually free again once that
// relay's batch is confirmed, tens of milliseconds later.
func blockedKeyTTL(poll time.Duration) time.Duration { return min(poll, 100*time.Millisecond) }

// add remembers keys until until and returns how many were not known yet.
func (b blockedKeys) add(keys []string, until time.Time) (added int) {
	for _, k := range keys {
		if _, ok := b[k]; !ok {
			if len(b) >= maxBlockedKeys {
				return added
			}
			added++
		}
		b[k] = until
	}
	return added
}

// keys drops the expired entries and returns the others.
func (b blockedKeys) keys(now time.Time) []string {
	out := make([]string, 0, len(b))
	for k, until := range b {
		if now.After(until) {
			delete(b, k)
			continue
		}
		out = append(out, k)
	}
	return out
}

// earliest returns when the first remembered key expires, and false when
// none is remembered.
func (b blockedKeys) earliest() (time.Time, bool) {
	var first time.Time
	for _, until := range b {
		if first.IsZero() || until.Before(first) {
			first = until
		}
	}
	return first, !first.IsZero()
}
