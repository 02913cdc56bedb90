package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestHTTPInstrument: requests are counted under their route's pattern, never
// their raw path; the routes' series exist at 0 before the first request.
func TestHTTPInstrument(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h, err := NewHTTP(reg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("/riverui/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui") })
	srv := h.Instrument(mux,
		Route{Pattern: "GET /healthz", OK: http.StatusOK},
		Route{Pattern: "POST /signup", OK: http.StatusCreated},
		Route{Pattern: "/riverui/"})

	require.Equal(t, 0.0, testutil.ToFloat64(h.requests.WithLabelValues("/healthz", "get", "200")))
	require.Equal(t, 2, testutil.CollectAndCount(h.requests), "the routes with a success status, before any request")
	require.Equal(t, 3, testutil.CollectAndCount(h.duration), "every route, before any request")

	do := func(method, target string) int {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader("{}")))
		return rec.Code
	}
	require.Equal(t, http.StatusOK, do("GET", "/healthz"))
	require.Equal(t, http.StatusOK, do("GET", "/healthz?x=1"))
	require.Equal(t, http.StatusCreated, do("POST", "/signup"))
	require.Equal(t, http.StatusOK, do("GET", "/riverui/jobs/123"))
	require.Equal(t, http.StatusOK, do("GET", "/riverui/api/jobs?state=completed"))
	require.Equal(t, http.StatusNotFound, do("GET", "/no/such/path/42"))
	require.Equal(t, http.StatusMethodNotAllowed, do("DELETE", "/signup"))
	require.Equal(t, http.StatusNotFound, do("BREW", "/coffee"))

	require.Equal(t, 2.0, testutil.ToFloat64(h.requests.WithLabelValues("/healthz", "get", "200")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.requests.WithLabelValues("/signup", "post", "201")))
	require.Equal(t, 2.0, testutil.ToFloat64(h.requests.WithLabelValues("/riverui/", "get", "200")), "every River UI path is one route")
	require.Equal(t, 1.0, testutil.ToFloat64(h.requests.WithLabelValues(UnmatchedHandler, "get", "404")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.requests.WithLabelValues(UnmatchedHandler, "delete", "405")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.requests.WithLabelValues(UnmatchedHandler, "unknown", "404")), "an unknown method is not a label value")
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				require.NotContains(t, l.GetValue(), "123", "a raw path in a label")
				require.NotContains(t, l.GetValue(), "no/such", "a raw path in a label")
			}
		}
	}
	require.Equal(t, 6, testutil.CollectAndCount(h.duration), "3 routes, and unmatched with get, delete and unknown")
}

func TestSplitPattern(t *testing.T) {
	t.Parallel()
	for pattern, want := range map[string][2]string{
		"GET /metrics":            {"GET", "/metrics"},
		"/riverui/":               {"", "/riverui/"},
		"POST example.com/signup": {"POST", "/signup"},
		"example.com/":            {"", "/"},
	} {
		method, path := splitPattern(pattern)
		require.Equal(t, want, [2]string{method, path}, pattern)
	}
}

// TestHandlerNegotiates: /metrics answers OpenMetrics to a scraper that asks
// for it, the text format 0.0.4 otherwise.
func TestHandlerNegotiates(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "jobsd_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	scrape := func(accept string) (string, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		Handler(reg).ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		return rec.Header().Get("Content-Type"), rec.Body.String()
	}

	ct, body := scrape("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	require.True(t, strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0"), ct)
	require.Contains(t, body, "# TYPE jobsd_test counter\n")
	require.Contains(t, body, "jobsd_test_total 0.0\n")
	require.True(t, strings.HasSuffix(body, "# EOF\n"), body)

	for _, accept := range []string{"", "text/plain", "*/*"} {
		ct, body = scrape(accept)
		require.True(t, strings.HasPrefix(ct, "text/plain; version=0.0.4"), "Accept %q: %s", accept, ct)
		require.Contains(t, body, "# TYPE jobsd_test_total counter\n")
		require.NotContains(t, body, "# EOF")
	}
}
