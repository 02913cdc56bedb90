package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// Run with a fixed message count, e.g.
//
//	go test -run '^$' -bench 'RelayVsRawPublish' -benchtime 50000x ./relay/
//	go test -run '^$' -bench 'RelayLatency' -benchtime 1x ./relay/
//
// BenchmarkRelayVsRawPublish runs (a) a raw amqp091 publisher with pipelined
// confirms (window 500) and (b) the relay draining b.N pre-inserted outbox
// rows, both into a durable fanout exchange bound to a quorum queue with
// 200-byte persistent messages, and prints relay/raw.

const benchWindow = 500

var benchPayload = `{"user_id":"u-0000000000","email":"someone@example.com","pad":"` +
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + `"}`

func BenchmarkRelayVsRawPublish(b *testing.B) {
	rates := map[string]float64{}
	b.Run("raw", func(b *testing.B) { rates["raw"] = benchRaw(b) })
	b.Run("relay", func(b *testing.B) { rates["relay"] = benchRelay(b, 0) })
	b.Run("relay-100-keys", func(b *testing.B) { rates["relay-100-keys"] = benchRelay(b, 100) })
	if rates["raw"] > 0 {
		fmt.Printf("raw %.0f msg/s; relay %.0f msg/s = %.2f x raw; relay with 100 hot keys %.0f msg/s = %.2f x raw\n",
			rates["raw"], rates["relay"], rates["relay"]/rates["raw"],
			rates["relay-100-keys"], rates["relay-100-keys"]/rates["raw"])
	}
}

// benchTopology declares a durable fanout exchange bound to a quorum queue.
func benchTopology(b *testing.B) (*testbroker.Broker, string) {
	br := testbroker.New(b)
	name := br.Name("bench")
	ch := br.Channel()
	require.NoError(b, ch.ExchangeDeclare(name, amqp.ExchangeFanout, true, false, false, false, nil))
	_, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(b, err)
	require.NoError(b, ch.QueueBind(name, "", name, false, nil))
	return br, name
}

func benchRaw(b *testing.B) float64 {
	br, name := benchTopology(b)
	conn, err := amqp.Dial(br.URL)
	require.NoError(b, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(b, err)
	require.NoError(b, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, benchWindow+1))
	body := []byte(benchPayload)

	b.ResetTimer()
	start := time.Now()
	outstanding := 0
	await := func() {
		c := <-confirms
		if !c.Ack {
			b.Fatalf("nack for %d", c.DeliveryTag)
		}
		outstanding--
	}
	for i := 0; i < b.N; i++ {
		for outstanding >= benchWindow {
			await()
		}
		err := ch.PublishWithContext(context.Background(), name, "", false, false, amqp.Publishing{
			Headers:      amqp.Table{KeyHeader: "user-" + strconv.Itoa(i)},
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    strconv.Itoa(i),
			Timestamp:    time.Now(),
			Type:         "user.signed_up",
			Body:         body,
		})
		require.NoError(b, err)
		outstanding++
	}
	for outstanding > 0 {
		await()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "msg/s")
	return rate
}

// benchRelay measures the relay draining b.N rows inserted beforehand; keys
// 0 gives each row its own key, otherwise rows spread over that many keys.
func benchRelay(b *testing.B, keys int) float64 {
	db := testdb.New(b)
	br, name := benchTopology(b)
	ctx := context.Background()
	keyExpr := "'user-' || i"
	if keys > 0 {
		keyExpr = fmt.Sprintf("'user-' || (i %% %d)", keys)
	}
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO outbox_event (topic, key, payload)
		SELECT 'user.signed_up', `+keyExpr+`, $2::jsonb
		FROM generate_series(1, $1) AS i`, b.N, benchPayload)
	require.NoError(b, err)
	_, err = db.Pool.Exec(ctx, `VACUUM ANALYZE outbox_event`)
	require.NoError(b, err)

	r, err := New(db.Pool, br.URL, Config{
		Exchange:  name,
		Retention: RetentionDefault,
		Logger:    testLogger(),
	})
	require.NoError(b, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	go func() { done <- r.Run(runCtx) }()
	for r.published.Load() < int64(b.N) {
		time.Sleep(time.Millisecond) // polling a counter; the benchmark's resolution is 1ms
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "msg/s")
	return rate
}

// BenchmarkRelayLatency writes events with outbox.Write in small transactions
// at a steady 500 events/s for 5 s and measures commit -> consumer latency
// through the relay and a quorum queue. The "broker" sub-benchmark is the
// baseline: a raw publisher at the same rate, publish -> consumer. b.N is
// ignored.
func BenchmarkRelayLatency(b *testing.B) {
	b.Run("relay", func(b *testing.B) { benchLatency(b, true) })
	b.Run("broker", func(b *testing.B) { benchLatency(b, false) })
}

const (
	latencyRate     = 500 // events per second
	latencyDuration = 5 * time.Second
	latencyWriters  = 4
)

func benchLatency(b *testing.B, viaRelay bool) {
	db := testdb.New(b)
	br, name := benchTopology(b)
	ctx := context.Background()

	var mu sync.Mutex
	sent := map[int]time.Time{}
	receivedAt := map[int]time.Time{}
	conn, err := amqp.Dial(br.URL)
	require.NoError(b, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(b, err)
	require.NoError(b, ch.Qos(500, 0, false))
	deliveries, err := ch.Consume(name, "", false, false, false, false, nil)
	require.NoError(b, err)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for d := range deliveries {
			now := time.Now()
			var p struct{ Seq int }
			_ = json.Unmarshal(d.Body, &p)
			mu.Lock()
			receivedAt[p.Seq] = now
			mu.Unlock()
			_ = d.Ack(false)
		}
	}()

	// send delivers event seq: through the outbox (commit time) or straight
	// to the broker (publish time).
	var send func(seq int) error
	if viaRelay {
		r, err := New(db.Pool, br.URL, Config{Exchange: name, Retention: RetentionDefault, Logger: testLogger()})
		require.NoError(b, err)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		defer func() { cancel(); require.NoError(b, <-done) }()
		for !r.BrokerConnected() {
			time.Sleep(time.Millisecond)
		}
		send = func(seq int) error {
			return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				return outbox.Write(ctx, tx, outbox.Event{
					Topic: "user.signed_up", Key: "user-" + strconv.Itoa(seq),
					Payload: map[string]any{"seq": seq, "pad": benchPayload[:120]},
				})
			})
		}
	} else {
		pconn, err := amqp.Dial(br.URL)
		require.NoError(b, err)
		defer pconn.Close()
		var pmu sync.Mutex
		pch, err := pconn.Channel()
		require.NoError(b, err)
		require.NoError(b, pch.Confirm(false))
		send = func(seq int) error {
			body, _ := json.Marshal(map[string]any{"seq": seq, "pad": benchPayload[:120]})
			pmu.Lock()
			defer pmu.Unlock()
			_, err := pch.PublishWithDeferredConfirmWithContext(ctx, name, "", false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: body,
				MessageId: strconv.Itoa(seq), Type: "user.signed_up", Headers: amqp.Table{KeyHeader: "user-" + strconv.Itoa(seq)},
			})
			return err
		}
	}

	// latencyWriters goroutines send on a shared schedule: event seq is due
	// at start + seq/latencyRate; a writer that falls behind sends at once.
	b.ResetTimer()
	total := int(latencyDuration.Seconds() * latencyRate)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < latencyWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := w; seq < total; seq += latencyWriters {
				time.Sleep(time.Until(start.Add(time.Duration(seq) * time.Second / latencyRate)))
				err := send(seq)
				now := time.Now()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				sent[seq] = now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	writeTime := time.Since(start)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(receivedAt)
		mu.Unlock()
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	_ = conn.Close()
	<-consumed

	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, 0, total)
	for seq, c := range sent {
		if rcv, ok := receivedAt[seq]; ok {
			lat = append(lat, rcv.Sub(c))
		}
	}
	require.Len(b, lat, total, "every event must arrive")
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	b.ReportMetric(float64(total)/writeTime.Seconds(), "events/s")
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	what := "commit->consumer (relay)"
	if !viaRelay {
		what = "publish->consumer (broker only)"
	}
	fmt.Printf("%s latency at %.0f events/s over %v: p50 %v, p90 %v, p99 %v, max %v\n",
		what, float64(total)/writeTime.Seconds(), writeTime.Round(time.Millisecond),
		p(0.50).Round(10*time.Microsecond), p(0.90).Round(10*time.Microsecond),
		p(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}
