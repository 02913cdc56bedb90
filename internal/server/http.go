package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/jobsd/jobsd/signup"
)

// maxSignupBody bounds a POST /signup body.
const maxSignupBody = 64 << 10

// Handler returns the HTTP endpoints:
//
//	POST /signup   {"email","name"} -> 201 with the user id, job ids and event id
//	GET  /healthz  200 while the process runs
//	GET  /readyz   200 when the database answers and the relay (unless
//	               disabled) is connected to the broker, 503 otherwise
//	GET  /metrics  Prometheus metrics (basic auth when UIUser is set)
//	     /riverui/ River UI (basic auth when UIUser is set)
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", s.handleSignup)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	s.mountOps(mux)
	return mux
}

func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxSignupBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return
	}
	res, err := s.signup.Signup(r.Context(), req.Email, req.Name)
	switch {
	case errors.Is(err, signup.ErrInvalidInput):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, signup.ErrDuplicateEmail):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.cfg.Logger.Error("signup failed", "err", err)
		writeError(w, http.StatusInternalServerError, "signup failed; see the server log")
	default:
		writeJSON(w, http.StatusCreated, res)
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok"}
	status := http.StatusOK
	if err := s.pool.Ping(ctx); err != nil {
		checks["database"] = "unreachable"
		status = http.StatusServiceUnavailable
	}
	if s.relay != nil {
		checks["broker"] = "connected"
		if !s.relay.BrokerConnected() {
			checks["broker"] = "disconnected"
			status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, checks)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
