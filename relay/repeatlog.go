package relay

import "log/slog"

// repeatLog logs a repeating warning once per doubling of its count (1st,
// 2nd, 4th, 8th, ... time), so that a failure that lasts is seen without
// filling the log. reset starts over once the failure is gone.
type repeatLog struct{ n int }

func (r *repeatLog) log(l *slog.Logger, msg string, args ...any) {
	r.n++
	if r.n&(r.n-1) == 0 {
		l.Warn(msg, append(args, "times", r.n)...)
	}
}

func (r *repeatLog) reset() { r.n = 0 }
