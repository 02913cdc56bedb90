package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/jobsd/jobsd/internal/logging"
	"github.com/jobsd/jobsd/internal/metrics"
	"github.com/jobsd/jobsd/jobs"
)

// RiverUIPrefix is where River UI is mounted.
const RiverUIPrefix = "/riverui"

// ops is what operators look at: the metrics and River UI.
type ops struct {
	metrics *metrics.Metrics
	refused prometheus.Counter // signups refused over MaxBacklog
	http    *metrics.HTTP      // request metrics
	events  <-chan *river.Event
	ui      *riverui.Handler
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Validate reports a configuration New would refuse, without connecting to
// anything, so that a command line can fail before it opens the database.
func (c Config) Validate() error {
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry() // not kept; spares withDefaults' collectors
	}
	return c.withDefaults().validate()
}

// validateOps refuses an HTTP listener reachable from other hosts without
// credentials: River UI can cancel, retry and delete jobs.
func (c Config) validateOps() error {
	if (c.UIUser == "") != (c.UIPassword == "") {
		return errors.New("set both --ui-user and --ui-password (JOBSD_UI_USER / JOBSD_UI_PASSWORD), or neither")
	}
	if c.HTTPAddr != "-" && c.UIUser == "" && !isLoopback(c.HTTPAddr) {
		return fmt.Errorf("refusing to serve River UI and /metrics on %s without credentials: "+
			"set --ui-user and --ui-password (JOBSD_UI_USER / JOBSD_UI_PASSWORD), or listen on 127.0.0.1", c.HTTPAddr)
	}
	return nil
}

// isLoopback reports whether addr (host:port) listens on loopback only. An
// empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) initOps() error {
	m, err := metrics.New(metrics.Config{
		Pool:       s.pool,
		Registerer: s.cfg.Registry,
		Interval:   s.cfg.MetricsInterval,
		Logger:     s.cfg.Logger,
		Kinds:      jobs.Kinds(),
		Queues:     []string{river.QueueDefault},

		BacklogWarn:    s.cfg.BacklogWarn,
		BacklogWarnAge: s.cfg.BacklogWarnAge,
	})
	if err != nil {
		return err
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobsd_signups_refused_total",
		Help: "POST /signup answered 503 because the job backlog was above --max-backlog.",
	})
	if err := s.cfg.Registry.Register(refused); err != nil {
		return fmt.Errorf("metrics: register: %w", err)
	}
	httpMetrics, err := metrics.NewHTTP(s.cfg.Registry)
	if err != nil {
		return err
	}
	events, _ := s.river.Subscribe(metrics.RiverEventKinds...)
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(s.river, nil),
		Logger:    logging.Library(s.cfg.Logger, "riverui"),
		Prefix:    RiverUIPrefix,
	})
	if err != nil {
		return fmt.Errorf("river UI: %w", err)
	}
	s.ops = ops{metrics: m, refused: refused, http: httpMetrics, events: events, ui: ui}
	return nil
}

// startOps starts River UI's background services and the periodic count;
// both stop when ctx is done.
func (s *Server) startOps(ctx context.Context) error {
	if err := s.ops.ui.Start(ctx); err != nil {
		return fmt.Errorf("start river UI: %w", err)
	}
	go s.ops.metrics.Run(ctx)
	return nil
}

// observeJobs records job outcomes until River closes the subscription when
// it stops; call it once River started.
func (s *Server) observeJobs() {
	go s.ops.metrics.ObserveRiver(s.ops.events)
}

// brokerBlockedMetric is the relay's blocked state as a gauge. The relay
// registers jobsd_relay_broker_connected itself; this one is registered here
// unless the relay already registered it.
const brokerBlockedMetric = "jobsd_relay_broker_blocked"

// registerBrokerBlocked exports s.relay.BrokerBlocked as a gauge.
func (s *Server) registerBrokerBlocked() error {
	families, _ := s.cfg.Registry.Gather() // what gathers is enough to tell
	for _, f := range families {
		if f.GetName() == brokerBlockedMetric {
			return nil
		}
	}
	r := s.relay
	return s.cfg.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: brokerBlockedMetric,
		Help: "1 while the broker blocks the relay's publishing (connection.blocked: a memory or disk alarm), else 0.",
	}, func() float64 {
		if r.BrokerBlocked() {
			return 1
		}
		return 0
	}))
}

// Registry returns the registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.cfg.Registry }

func (s *Server) mountOps(mux *http.ServeMux) {
	reg := s.cfg.Registry
	mux.Handle("GET /metrics", s.protect(metrics.Handler(reg)))
	mux.Handle(RiverUIPrefix+"/", s.protect(s.ops.ui))
}

// protect requires the UI credentials, when they are set. The comparison
// takes the same time whatever the input.
func (s *Server) protect(h http.Handler) http.Handler {
	if s.cfg.UIUser == "" {
		return h
	}
	wantUser, wantPass := sha256.Sum256([]byte(s.cfg.UIUser)), sha256.Sum256([]byte(s.cfg.UIPassword))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="jobsd", charset="UTF-8"`)
			http.Error(w, "unauthorized: River UI and /metrics need the --ui-user credentials", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
