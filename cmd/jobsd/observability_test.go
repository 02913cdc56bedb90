package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestObservability runs a fresh `jobsd serve` and `jobsd consume` with JSON
// logs at debug level and checks, on the real processes:
//   - every labelled counter operators alert on exists at 0 from the first
//     scrape (rate() and ratios work before the first failure);
//   - docs/operations.md lists exactly the jobsd_* metrics the processes
//     expose, with their types and labels (the doc cannot rot);
//   - every log line follows the conventions of docs/operations.md ("Logs").
func TestObservability(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	exchange, queue := b.Name("x"), b.Name("q")
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL, "GORACE=atexit_sleep_ms=0"}
	logFlags := []string{"--log-format", "json", "--log-level", "debug"}

	serve := testbin.Start(t, env, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--exchange", exchange,
		"--fail-service", "food", "--metrics-interval", "100ms"}, logFlags...)...)
	consume := testbin.Start(t, env, append([]string{"consume", "--queue", queue, "--exchange", exchange,
		"--http-addr", "127.0.0.1:0"}, logFlags...)...)
	serveURL := "http://" + jsonListenAddr(t, serve, "http listening")
	consumeURL := "http://" + jsonListenAddr(t, consume, "consumer HTTP listening")
	waitConsumers(t, b, queue, consume)

	// A fresh process: the labelled counters exist at 0.
	_, fresh := get(t, serveURL+"/metrics", "", "")
	for _, series := range []string{
		`jobsd_jobs_completed_total{kind="create_profile"}`,
		`jobsd_jobs_failed_total{kind="create_profile"}`,
		`jobsd_jobs_discarded_total{kind="create_profile"}`,
		`jobsd_jobs_cancelled_total{kind="create_profile"}`,
		`jobsd_job_wait_seconds_count{kind="create_profile",queue="default"}`,
		`jobsd_relay_publish_failures_total{result="retry"}`,
		`jobsd_relay_publish_failures_total{result="dead"}`,
		`jobsd_signups_refused_total`,
		`jobsd_outbox_published_total`,
		`jobsd_http_requests_total{code="201",handler="/signup",method="post"}`,
		`jobsd_http_request_duration_seconds_count{handler="/signup",method="post"}`,
	} {
		require.Equal(t, 0.0, metricValue(fresh, series), "%s at 0 on a fresh serve", series)
	}
	_, freshConsumer := get(t, consumeURL+"/metrics", "", "")
	for _, series := range []string{
		fmt.Sprintf(`jobsd_consumer_messages_total{queue=%q,result="processed"}`, queue),
		fmt.Sprintf(`jobsd_consumer_messages_total{queue=%q,result="rejected"}`, queue),
		fmt.Sprintf(`jobsd_consumer_retries_total{queue=%q,reason="database"}`, queue),
		`jobsd_http_requests_total{code="200",handler="/readyz",method="get"}`,
	} {
		require.Equal(t, 0.0, metricValue(freshConsumer, series), "%s at 0 on a fresh consume", series)
	}

	// OpenMetrics to a scraper that asks for it, on both.
	for _, base := range []string{serveURL, consumeURL} {
		req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Contains(t, resp.Header.Get("Content-Type"), "application/openmetrics-text", base)
		require.True(t, strings.HasSuffix(string(body), "# EOF\n"), base)
	}

	// Some work: a signup whose food profile fails, its event consumed.
	postSignup(t, serveURL, "obs@example.com")
	code, _ := get(t, serveURL+"/no/such/page", "", "")
	require.Equal(t, http.StatusNotFound, code)
	var serveBody, consumeBody string
	waitFor(t, "the event consumed and a job failed", func() bool {
		_, serveBody = get(t, serveURL+"/metrics", "", "")
		_, consumeBody = get(t, consumeURL+"/metrics", "", "")
		return metricValue(consumeBody, fmt.Sprintf(`jobsd_consumer_messages_total{queue=%q,result="processed"}`, queue)) == 1 &&
			metricValue(serveBody, `jobsd_jobs_failed_total{kind="create_profile"}`) >= 1 &&
			metricValue(serveBody, `jobsd_jobs_completed_total{kind="create_profile"}`) == 2 &&
			metricValue(serveBody, `jobsd_jobs{queue="default",state="completed"}`) == 2
	}, func() string { return serveBody + consumeBody })
	require.Equal(t, 1.0, metricValue(serveBody, `jobsd_http_requests_total{code="201",handler="/signup",method="post"}`))
	require.Equal(t, 1.0, metricValue(serveBody, `jobsd_http_requests_total{code="404",handler="unmatched",method="get"}`))
	require.GreaterOrEqual(t, metricValue(serveBody, `jobsd_job_wait_seconds_count{kind="create_profile",queue="default"}`), 3.0)

	// The doc lists what the processes expose.
	exposed := parseExposition(t, serveBody)
	for name, f := range parseExposition(t, consumeBody) {
		if have, ok := exposed[name]; ok {
			have.labels = union(have.labels, f.labels)
			f = have
		}
		exposed[name] = f
	}
	documented := documentedMetrics(t)
	require.Equal(t, sortedKeys(documented), sortedKeys(exposed),
		"docs/operations.md lists exactly the jobsd_* metrics that serve and consume expose")
	for name, f := range exposed {
		d := documented[name]
		require.Equal(t, f.typ, d.typ, "the type of %s in docs/operations.md", name)
		if len(f.labels) > 0 { // families without a series yet show no labels
			require.Equal(t, d.labels, f.labels, "the labels of %s in docs/operations.md", name)
		}
	}

	// Stop both and read their logs.
	require.NoError(t, serve.Signal(syscall.SIGTERM))
	require.NoError(t, consume.Signal(syscall.SIGTERM))
	require.Equal(t, 0, serve.Wait(deadline), serve.Output())
	require.Equal(t, 0, consume.Wait(deadline), consume.Output())
	components := map[string]bool{}
	for _, p := range []*testbin.Process{serve, consume} {
		for _, line := range requireLogConventions(t, p.Output()) {
			components[line["component"].(string)] = true
		}
	}
	for _, c := range []string{"serve", "relay", "river", "consumer", "http"} {
		require.True(t, components[c], "no line of component %s in %v", c, sortedKeys(components))
	}
}

// jsonListenAddr waits until p logs msg as a JSON line and returns its addr.
func jsonListenAddr(t *testing.T, p *testbin.Process, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`"msg":"` + regexp.QuoteMeta(msg) + `".*?"addr":"([^"]+)"`)
	var addr string
	waitFor(t, "jobsd to listen", func() bool {
		select {
		case <-p.Done():
			t.Fatalf("jobsd exited before listening:\n%s", p.Output())
		default:
		}
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, p.Output)
	return addr
}

// durationKey matches the keys of attributes that hold a duration.
var durationKey = regexp.MustCompile(`took|duration|timeout|interval|grace|backoff|_age|^age|retention|next_in|elapsed|delay|wait|lag|lease|poll`)

// requireLogConventions checks every line of output (JSON logs) against the
// conventions of docs/operations.md and returns the decoded lines.
func requireLogConventions(t *testing.T, output string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		raw := sc.Text()
		var line map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &line), "not a JSON log line: %s", raw)
		require.Equal(t, 1, strings.Count(raw, `"component":`), "one component: %s", raw)
		require.NotEmpty(t, line["component"], "component: %s", raw)
		require.NotContains(t, line, "error", "the error key is err: %s", raw)
		if strings.HasSuffix(line["msg"].(string), "Producer job counts") {
			require.Equal(t, "DEBUG", line["level"], raw)
		}
		walkAttrs(line, func(key string, v any) {
			n, isNumber := v.(float64)
			require.False(t, isNumber && durationKey.MatchString(key), "a duration as a number: %s in %s", key, raw)
			require.False(t, isNumber && n >= 1e6, "a number that looks like nanoseconds: %s in %s", key, raw)
		})
		lines = append(lines, line)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, lines)
	return lines
}

func walkAttrs(m map[string]any, fn func(key string, v any)) {
	for k, v := range m {
		if group, ok := v.(map[string]any); ok {
			walkAttrs(group, fn)
			continue
		}
		fn(k, v)
	}
}

// family is a metric family: its type and its label names.
type family struct {
	typ    string
	labels []string // sorted
}

var (
	typeLine   = regexp.MustCompile(`^# TYPE (jobsd_\w+) (\w+)$`)
	sampleLine = regexp.MustCompile(`^(jobsd_\w+?)(_bucket|_sum|_count)?(?:\{(.*)\})? \S+$`)
	labelName  = regexp.MustCompile(`(\w+)="(?:[^"\\]|\\.)*"`)
)

// parseExposition returns the jobsd_* families of a text-format scrape.
func parseExposition(t *testing.T, body string) map[string]family {
	t.Helper()
	out := map[string]family{}
	for _, line := range strings.Split(body, "\n") {
		if m := typeLine.FindStringSubmatch(line); m != nil {
			out[m[1]] = family{typ: m[2]}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		f, ok := out[name]
		if !ok { // jobsd_x_count of a family named jobsd_x_count
			name, f, ok = m[1]+m[2], out[m[1]+m[2]], true
		}
		require.True(t, ok, line)
		for _, l := range labelName.FindAllStringSubmatch(m[3], -1) {
			if l[1] != "le" {
				f.labels = union(f.labels, []string{l[1]})
			}
		}
		out[name] = f
	}
	return out
}

var (
	docRow   = regexp.MustCompile("^\\| `(jobsd_\\w+)` \\| (\\w+) \\|([^|]*)\\|")
	backtick = regexp.MustCompile("`(\\w+)`")
)

// documentedMetrics returns the metrics the tables of docs/operations.md
// list, with the types and labels they give.
func documentedMetrics(t *testing.T) map[string]family {
	t.Helper()
	data, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	out := map[string]family{}
	for _, line := range strings.Split(string(data), "\n") {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := family{typ: m[2]}
		for _, l := range backtick.FindAllStringSubmatch(m[3], -1) {
			f.labels = union(f.labels, []string{l[1]})
		}
		if have, ok := out[m[1]]; ok { // listed for serve and for consume
			require.Equal(t, have, f, "%s is documented twice, differently", m[1])
		}
		out[m[1]] = f
	}
	return out
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
