package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/jobsd/jobsd/internal/metrics"
	"github.com/jobsd/jobsd/signup"
)

// Handler returns the HTTP endpoints:
//
//	POST /signup   {"email","name"} -> 201 with the user id, job ids and event
//	               id; 400 malformed or invalid, 408 body too slow, 409
//	               duplicate email, 413 body over MaxSignupBody, 500; 503
//	               with Retry-After while the job backlog is above
//	               Config.MaxBacklog
//	GET  /readyz   200 when the process can take signups (the database
//	               answers), 503 otherwise and from the moment a stop
//	               begins ({"status": "stopping"}, see
//	               Config.ReadinessGrace); the body also reports the broker
//	               ("connected", "blocked" or "disconnected"), which never
//	               makes it 503: the outbox absorbs a broker outage, and the
//	               job backlog and its oldest job's age (never 503 either:
//	               "signups" says whether MaxBacklog refuses them)
//	GET  /healthz  200 while the process runs
//	GET  /metrics  Prometheus metrics (basic auth when UIUser is set)
//	     /riverui/ River UI (basic auth when UIUser is set)
//
// Every request is counted in jobsd_http_requests_total and
// jobsd_http_request_duration_seconds under the route it matched.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /signup", s.traceHTTP("POST /signup", s.handleSignup))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	s.mountOps(mux)
	return s.ops.http.Instrument(mux,
		metrics.Route{Pattern: "POST /signup", OK: http.StatusCreated},
		metrics.Route{Pattern: "GET /healthz", OK: http.StatusOK},
		metrics.Route{Pattern: "GET /readyz", OK: http.StatusOK},
		metrics.Route{Pattern: "GET /metrics", OK: http.StatusOK},
		metrics.Route{Pattern: RiverUIPrefix + "/", OK: http.StatusOK})
}

func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	if b := s.ops.metrics.Backlog(); s.overBacklog(b) {
		s.ops.refused.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter()))
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"overloaded: %d jobs wait to run (more than --max-backlog %d); retry later", b.Jobs, s.cfg.MaxBacklog))
		return
	}
	req, reqErr := decodeSignup(http.MaxBytesReader(w, r.Body, MaxSignupBody))
	if reqErr != nil {
		if reqErr.status != http.StatusBadRequest {
			w.Header().Set("Connection", "close") // the rest of the body is not read
		}
		writeError(w, reqErr.status, reqErr.msg)
		return
	}
	res, err := s.signup.Signup(r.Context(), req.Email, req.Name)
	switch {
	case errors.Is(err, signup.ErrInvalidInput):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, signup.ErrDuplicateEmail):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.log.ErrorContext(r.Context(), "signup failed", "err", err)
		writeError(w, http.StatusInternalServerError, "signup failed; see the server log")
	default:
		writeJSON(w, http.StatusCreated, res)
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]any{"database": "ok"}
	status := http.StatusOK
	if err := s.pool.Ping(ctx); err != nil {
		checks["database"] = "unreachable"
		status = http.StatusServiceUnavailable
	}
	if s.relay != nil {
		checks["broker"] = brokerState(s.relay.BrokerConnected(), s.relay.BrokerBlocked())
	}
	if b := s.ops.metrics.Backlog(); b.Known() {
		checks["backlog"] = b.Jobs
		checks["backlog_oldest_age_seconds"] = math.Round(b.OldestAge.Seconds()*1000) / 1000
		if s.cfg.MaxBacklog > 0 {
			checks["signups"] = "accepted"
			if s.overBacklog(b) {
				checks["signups"] = "refused (backlog above --max-backlog)"
			}
		}
	}
	writeJSON(w, status, checks)
}

// overBacklog reports whether signups are refused: MaxBacklog is set and the
// last count of the backlog is above it.
func (s *Server) overBacklog(b metrics.Backlog) bool {
	return s.cfg.MaxBacklog > 0 && b.Jobs > s.cfg.MaxBacklog
}

// retryAfter is the Retry-After of a refused signup, in whole seconds: the
// next count of the backlog, at least a second.
func (s *Server) retryAfter() int {
	return max(1, int(math.Ceil(s.metricsInterval().Seconds())))
}

// metricsInterval is how often the backlog is counted.
func (s *Server) metricsInterval() time.Duration {
	if s.cfg.MetricsInterval > 0 {
		return s.cfg.MetricsInterval
	}
	return metrics.IntervalDefault
}

// brokerState is the relay's broker as /readyz reports it. It is information
// for operators, never a reason to answer 503: signups only need the
// database, and their events wait in the outbox until the broker is back.
func brokerState(connected, blocked bool) string {
	switch {
	case !connected:
		return "disconnected"
	case blocked:
		return "blocked"
	}
	return "connected"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
