package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves reg's metrics on GET /metrics: the Prometheus text format
// (0.0.4) by default, OpenMetrics to a scraper that asks for it (Accept:
// application/openmetrics-text), which carries exemplars and ends with # EOF.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// UnmatchedHandler is the handler label of requests no route matched (404,
// 405).
const UnmatchedHandler = "unmatched"

// Route is a route of a ServeMux whose request metrics exist from the start.
type Route struct {
	Pattern string // as registered: "GET /metrics", "/riverui/"
	OK      int    // its success status, counted at 0 from the start (e.g. 200); 0 for none
}

// HTTP holds an HTTP server's request metrics: jobsd_http_requests_total
// {handler, method, code} and jobsd_http_request_duration_seconds {handler,
// method}. The handler label is the path of the ServeMux pattern a request
// matched ("/signup", "/riverui/" for every River UI page), never the raw
// path, so that its values are as few as the routes.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the request metrics on reg.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobsd_http_requests_total",
			Help: "HTTP requests answered, by route (the matched pattern's path, or unmatched), method and status code.",
		}, []string{"handler", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jobsd_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, from their headers to the end of the response, by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler", "method"}),
	}
	for _, c := range []prometheus.Collector{h.requests, h.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return h, nil
}

// Instrument returns mux with every request measured under the route it
// matches. The routes' series exist at 0 from the start.
func (h *HTTP) Instrument(mux *http.ServeMux, routes ...Route) http.Handler {
	for _, r := range routes {
		method, path := splitPattern(r.Pattern)
		if method == "" {
			method = http.MethodGet
		}
		method = strings.ToLower(method) // as promhttp writes it
		h.duration.WithLabelValues(path, method)
		if r.OK != 0 {
			h.requests.WithLabelValues(path, method, strconv.Itoa(r.OK))
		}
	}
	var handlers sync.Map // handler label -> mux instrumented under it
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		label := UnmatchedHandler
		if pattern != "" {
			_, label = splitPattern(pattern)
		}
		instrumented, ok := handlers.Load(label)
		if !ok {
			labels := prometheus.Labels{"handler": label}
			instrumented, _ = handlers.LoadOrStore(label, promhttp.InstrumentHandlerDuration(
				h.duration.MustCurryWith(labels),
				promhttp.InstrumentHandlerCounter(h.requests.MustCurryWith(labels), mux)))
		}
		instrumented.(http.Handler).ServeHTTP(w, r)
	})
}

// splitPattern splits a ServeMux pattern "[METHOD ][HOST]/[PATH]" into its
// method and its path.
func splitPattern(pattern string) (method, path string) {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		method, pattern = pattern[:i], strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.Index(pattern, "/"); i > 0 {
		pattern = pattern[i:] // without the host
	}
	return method, pattern
}
