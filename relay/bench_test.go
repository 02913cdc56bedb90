package relay_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jobsd/jobsd/internal/bench"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// Run with a fixed message count, e.g.
//
//	go test -run '^$' -bench 'RelayVsRawPublish' -benchtime 50000x ./relay/
//	go test -run '^$' -bench 'RelayLatency' -benchtime 1x ./relay/
//
// The measurements live in internal/bench, shared with `jobsd bench`.
//
// BenchmarkRelayVsRawPublish runs (a) a raw amqp091 publisher with pipelined
// confirms (window 500) and (b) the relay draining b.N pre-inserted outbox
// rows, both into a durable fanout exchange bound to a quorum queue with
// 200-byte persistent messages, each timed until a consumer received all b.N,
// and prints relay/raw.
func BenchmarkRelayVsRawPublish(b *testing.B) {
	rates := map[string]float64{}
	b.Run("raw", func(b *testing.B) {
		rates["raw"] = benchThroughput(b, func(ctx context.Context, url string) (bench.Throughput, error) {
			return bench.RawPublish(ctx, url, b.N, bench.WindowDefault, bench.SizeDefault)
		})
	})
	for _, keys := range []int{0, bench.HotKeys} {
		name := "relay"
		if keys > 0 {
			name = fmt.Sprintf("relay-%d-keys", keys)
		}
		b.Run(name, func(b *testing.B) {
			db := testdb.New(b)
			rates[name] = benchThroughput(b, func(ctx context.Context, url string) (bench.Throughput, error) {
				return bench.RelayDrain(ctx, db.Pool, url, b.N, keys)
			})
		})
	}
	if rates["raw"] > 0 {
		fmt.Printf("raw %.0f msg/s; relay %.0f msg/s = %.2f x raw; relay with %d hot keys %.0f msg/s = %.2f x raw\n",
			rates["raw"], rates["relay"], rates["relay"]/rates["raw"], bench.HotKeys,
			rates["relay-100-keys"], rates["relay-100-keys"]/rates["raw"])
	}
}

// BenchmarkRelayStrictOrder is what StrictOrder costs: the relay draining
// b.N rows with a key per row, 1000 keys, 100 keys and 1 key, pipelined (the
// default) and with at most one message of a key in flight, into a quorum
// queue as BenchmarkRelayVsRawPublish; it prints strict/pipelined per key
// count.
func BenchmarkRelayStrictOrder(b *testing.B) {
	rates := map[string]float64{}
	for _, keys := range []int{0, 1000, bench.HotKeys, 1} {
		for _, strict := range []bool{false, true} {
			name := fmt.Sprintf("keys=%d/strict=%v", keys, strict)
			b.Run(name, func(b *testing.B) {
				db := testdb.New(b)
				rates[name] = benchThroughput(b, func(ctx context.Context, url string) (bench.Throughput, error) {
					return bench.RelayDrainOrder(ctx, db.Pool, url, b.N, keys, strict)
				})
			})
		}
		if p := rates[fmt.Sprintf("keys=%d/strict=false", keys)]; p > 0 {
			s := rates[fmt.Sprintf("keys=%d/strict=true", keys)]
			fmt.Printf("keys %d (0: one per row): pipelined %.0f msg/s, strict %.0f msg/s = %.2f x\n", keys, p, s, s/p)
		}
	}
}

func benchThroughput(b *testing.B, f func(ctx context.Context, url string) (bench.Throughput, error)) float64 {
	url := testbroker.New(b).URL
	b.ResetTimer()
	res, err := f(context.Background(), url)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Rate, "msg/s")
	return res.Rate
}

// BenchmarkRelayLatency writes events with outbox.Write in small transactions
// at a steady 500 events/s for 5 s and measures commit -> consumer latency
// through the relay and a quorum queue. The "broker" sub-benchmark is the
// baseline: a raw publisher at the same rate, publish -> consumer. b.N is
// ignored.
func BenchmarkRelayLatency(b *testing.B) {
	const (
		rate     = 500 // events per second
		duration = 5 * time.Second
	)
	b.Run("relay", func(b *testing.B) {
		db := testdb.New(b)
		benchLatency(b, "commit->consumer (relay)", func(ctx context.Context, url string) (bench.LatencyStats, error) {
			return bench.RelayLatency(ctx, db.Pool, url, rate, duration)
		})
	})
	b.Run("broker", func(b *testing.B) {
		benchLatency(b, "publish->consumer (broker only)", func(ctx context.Context, url string) (bench.LatencyStats, error) {
			return bench.BrokerLatency(ctx, url, rate, duration)
		})
	})
}

func benchLatency(b *testing.B, what string, f func(ctx context.Context, url string) (bench.LatencyStats, error)) {
	url := testbroker.New(b).URL
	b.ResetTimer()
	s, err := f(context.Background(), url)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(s.Rate, "events/s")
	b.ReportMetric(s.P50, "p50-ms")
	b.ReportMetric(s.P99, "p99-ms")
	b.ReportMetric(s.Max, "max-ms")
	fmt.Printf("%s latency at %.0f events/s: p50 %.2fms, p90 %.2fms, p99 %.2fms, max %.2fms\n",
		what, s.Rate, s.P50, s.P90, s.P99, s.Max)
}

// BenchmarkRelayBacklog drains backlogs of 30k and 300k rows over 1000 keys
// with no consumer, beside raw pipelined publishing to the same queue type
// (JOBSD_BENCH_LARGE sets the large size, e.g. 1000000). b.N is ignored.
func BenchmarkRelayBacklog(b *testing.B) {
	large := 300_000
	if v := os.Getenv("JOBSD_BENCH_LARGE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		large = n
	}
	db := testdb.New(b)
	url := testbroker.New(b).URL
	res, err := bench.Backlog(context.Background(), db.Pool, url, 30_000, large)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("no consumer: 30k: raw publish %.0f msg/s, relay %.0f ev/s (%.2f x raw); %d: raw publish %.0f msg/s, relay %.0f ev/s (%.2f x raw); relay %d / relay 30k = %.2f\n",
		res.RawSmall.Rate, res.Small.Rate, res.SmallOverRaw, large, res.RawLarge.Rate, res.Large.Rate, res.LargeOverRaw, large, res.LargeOverSmall)
}

// BenchmarkRelayScale drains 60k rows with 1, 2 and 4 relays on one database.
func BenchmarkRelayScale(b *testing.B) {
	db := testdb.New(b)
	url := testbroker.New(b).URL
	res, err := bench.Scale(context.Background(), db.Pool, url, 60_000)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("raw publish (no consumer) %.0f msg/s; a key per row: 1 relay %.0f, 2 relays %.0f, 4 relays %.0f ev/s; "+
		"%d keys: 1 relay %.0f, 2 relays %.0f, 4 relays %.0f ev/s\n",
		res.Raw.Rate, res.UniqueKeys[1].Rate, res.UniqueKeys[2].Rate, res.UniqueKeys[4].Rate,
		bench.BacklogKeys, res.HotKeys[1].Rate, res.HotKeys[2].Rate, res.HotKeys[4].Rate)
}
