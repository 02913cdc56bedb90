package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

const (
	// confirmGrace is how long a stopping relay waits for outstanding confirms.
	confirmGrace = 5 * time.Second
	// closeTimeout bounds the wait for the broker's answer to a connection close.
	closeTimeout = 2 * time.Second
)

// session is one confirm-mode channel: a publisher (the caller of serve) that
// publishes the claimed batches, and a confirmer goroutine that waits for the
// broker's confirm of each message in publish order. Publishes are pipelined:
// about Window messages wait for their confirm at once.
//
// Confirms come from amqp091's DeferredConfirmation, which tracks each
// delivery tag on its own. (NotifyPublish resequences confirms and loses a
// nack that arrives before the ack of an earlier tag when a multiple ack
// follows.) When the channel closes, amqp091 resolves the outstanding
// deferred confirmations as nacks; a nack seen on a closed channel therefore
// means "unknown", and the row is published again.
type session struct {
	*run
	conn     *amqp.Connection
	ch       *amqp.Channel
	gate     *gate    // the connection's blocked state
	frameMax int      // the connection's negotiated frame size
	backoff  *backoff // reset once the broker confirms a message
	acked    bool     // the broker confirmed a message on this session; confirmer only

	closes  <-chan *amqp.Error
	returns <-chan amqp.Return // nil unless Mandatory

	// inflight holds the published messages in publish order until the
	// confirmer takes them; its capacity is the window.
	inflight    chan inflight
	outstanding atomic.Int64           // published, not yet resolved
	returned    map[string]amqp.Return // by message id; confirmer only

	chDone   chan struct{} // closed when the channel is gone
	closeErr *amqp.Error   // why; set before chDone is closed
	pubDone  chan struct{} // closed when the publisher stopped
	orphans  []*row        // published, but the publisher stopped before handing them over
	progress chan struct{} // a confirm was handled

	// With StrictOrder: the in-flight messages per key, and a signal to the
	// publisher that one was resolved.
	keyMu       sync.Mutex
	keyInflight map[string]int
	keyDone     chan struct{}
}

type inflight struct {
	dc   *amqp.DeferredConfirmation
	row  *row
	span trace.Span // the publish span; nil when tracing is off
}

// outcome is how a session ended.
type outcome struct {
	unconfirmed []*row // published (or not) without a confirm, in publish order
	err         error  // why the channel closed; nil after a clean close
	connLost    bool   // the whole connection is gone (not just the channel)
}

// serve publishes until the channel closes or ctx is done. It first
// publishes suspects (rows unconfirmed when the previous channel failed) one
// at a time.
func (s *session) serve(suspects []*row) outcome {
	s.returned = map[string]amqp.Return{}
	s.chDone = make(chan struct{})
	s.pubDone = make(chan struct{})
	s.progress = make(chan struct{}, 1)
	s.keyInflight = map[string]int{}
	s.keyDone = make(chan struct{}, 1)
	go func() {
		if e, ok := <-s.closes; ok {
			s.closeErr = e
		}
		close(s.chDone)
	}()
	// A publisher stuck in a socket write (the broker stopped reading: a
	// resource alarm) does not see ctx: once stopping has taken longer than
	// the grace, closing the connection with a deadline frees it.
	go func() {
		select {
		case <-s.ctx.Done():
		case <-s.pubDone:
			return
		}
		t := time.NewTimer(confirmGrace)
		defer t.Stop()
		select {
		case <-s.pubDone:
		case <-t.C:
			s.closeConn()
		}
	}()
	if out, ended := s.isolate(suspects); ended {
		close(s.pubDone)
		return out
	}

	outc := make(chan outcome, 1)
	go func() { outc <- s.confirmLoop() }()
	s.sessionUp.Store(true)
	signal(s.wantClaim)
	s.publishLoop()
	s.sessionUp.Store(false)
	close(s.pubDone)

	select {
	case <-s.chDone:
	default:
		if s.ctx.Err() == nil {
			// A publish failed: the channel is going away on its own (and
			// its unconfirmed messages may be suspects); give it a moment.
			select {
			case <-s.chDone:
			case <-time.After(closeTimeout):
				s.closeConn()
			}
			break
		}
		// Stopping: give the outstanding confirms a moment, then close the
		// connection (not just the channel: a blocked broker answers no
		// close, and the close must not wait for it).
		s.awaitConfirms(confirmGrace)
		s.closeConn()
	}
	out := <-outc
	out.unconfirmed = append(out.unconfirmed, s.orphans...)
	return out
}

func (s *session) publishLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.chDone:
			return
		case b := <-s.batches:
			if !s.publishBatch(b) {
				return
			}
		}
	}
}

// publishBatch publishes b's rows in order. A row whose key had a row fail
// or be released since the claim is released instead (see batch.epoch); the
// rest of the batch is released when its lease is running out. It reports
// false when the channel is gone or ctx is done.
func (s *session) publishBatch(b *batch) bool {
	s.forgetBarriers(b.epoch)
	s.allowPrefetch()
	s.log.Debug("publishing batch", "first", b.rows[0].ID, "rows", len(b.rows))
	for i, rw := range b.rows {
		if !s.awaitMarks() || !s.awaitUnblocked() {
			s.release(b.rows[i:]...)
			return false
		}
		if time.Now().After(b.publishBy) {
			s.log.Debug("batch's lease is running out; releasing its rows", "first", rw.ID, "rows", len(b.rows)-i)
			s.release(b.rows[i:]...)
			return true
		}
		if !s.awaitKey(rw) {
			s.release(b.rows[i:]...)
			return false
		}
		if s.barred(rw, b.epoch) {
			s.release(rw)
			continue
		}
		msg, err := s.message(rw)
		if err != nil {
			s.failRow(rw, err.Error(), true) // it can never be sent
			continue
		}
		span := s.startPublish(rw, &msg)
		dc, err := s.ch.PublishWithDeferredConfirmWithContext(context.Background(), s.cfg.Exchange, rw.Topic, s.cfg.Mandatory, false, msg)
		if err != nil {
			// The channel or the connection is gone; rw may or may not
			// have reached the broker.
			endPublish(span, errUnconfirmed)
			s.orphans = append(s.orphans, rw)
			s.release(b.rows[i+1:]...)
			return false
		}
		s.keyPublished(rw)
		select {
		case s.inflight <- inflight{dc: dc, row: rw, span: span}:
			s.outstanding.Add(1)
		case <-s.chDone:
			endPublish(span, errUnconfirmed)
			s.orphans = append(s.orphans, rw)
			s.release(b.rows[i+1:]...)
			return false
		case <-s.ctx.Done():
			endPublish(span, errUnconfirmed)
			s.orphans = append(s.orphans, rw)
			s.release(b.rows[i+1:]...)
			return false
		}
	}
	return true
}

// awaitUnblocked waits while the broker blocks publishing (a resource
// alarm). It reports false when the channel is gone or ctx is done.
func (s *session) awaitUnblocked() bool {
	for {
		open := s.gate.wait()
		if open == nil {
			return true
		}
		select {
		case <-open:
		case <-s.chDone:
			return false
		case <-s.ctx.Done():
			return false
		}
	}
}

// awaitMarks waits while a batch of confirmed rows waits to be marked
// published (the database is slow or down). It reports false when the
// channel is gone or ctx is done.
func (s *session) awaitMarks() bool {
	for s.unmarked.Load() >= int64(s.cfg.BatchSize) {
		select {
		case <-s.marked:
		case <-s.chDone:
			return false
		case <-s.ctx.Done():
			return false
		}
	}
	return true
}

// allowPrefetch lets the claimer claim the next batch.
func (s *session) allowPrefetch() {
	s.prefetch.Store(true)
	signal(s.kick)
}

// confirmLoop resolves the in-flight messages in publish order until the
// publisher stopped and nothing is left, and returns what stayed unconfirmed.
func (s *session) confirmLoop() outcome {
	var out outcome
	for {
		var f inflight
		select {
		case f = <-s.inflight:
		case <-s.pubDone:
			select {
			case f = <-s.inflight:
			default:
				s.closeReason(&out)
				return out
			}
		}
		s.awaitConfirm(f.dc)
		s.outstanding.Add(-1)
		if !f.dc.Acked() && s.ch.IsClosed() {
			endPublish(f.span, errUnconfirmed)
			out.unconfirmed = append(out.unconfirmed, f.row)
		} else {
			endPublish(f.span, s.resolve(f.row, f.dc.Acked(), f.span))
			s.ackedOnce(f.dc.Acked())
		}
		s.keyResolved(f.row) // after resolve: a nacked row has barred its key
		signal(s.progress)
	}
}

// awaitConfirm waits for dc. A broker that does not confirm within the
// confirm timeout is taken as broken: the connection is closed, which resolves
// every outstanding confirm as "unknown", and the relay reconnects. While the
// broker blocks publishing (a resource alarm) the wait is not a timeout: the
// broker holds what it has, and reconnecting would only publish it twice.
func (s *session) awaitConfirm(dc *amqp.DeferredConfirmation) {
	select {
	case <-dc.Done():
		return
	default:
	}
	timeout := confirmTimeout(s.cfg.Lease)
	t := time.NewTimer(timeout)
	defer t.Stop()
	seq := s.gate.seq()
	for {
		select {
		case <-dc.Done():
			return
		case <-t.C:
			if now := s.gate.seq(); s.gate.wait() != nil || now != seq {
				seq = now // blocked now or since the wait began
				t.Reset(timeout)
				continue
			}
			s.log.Warn("no publisher confirm from the broker in time; reconnecting", "timeout", timeout)
			s.closeConn()
			<-dc.Done()
			return
		}
	}
}

// message is message(rw) for this connection; with Config.noPrecheck it
// only encodes, so that the broker gets to refuse what sendable would.
func (s *session) message(rw *row) (amqp.Publishing, error) {
	if s.cfg.noPrecheck {
		return encode(rw, s.cfg.envelope())
	}
	return message(rw, s.cfg.envelope(), s.frameMax)
}

// closeConn closes the session's connection without waiting more than
// closeTimeout for the broker's answer.
func (s *session) closeConn() {
	_ = s.conn.CloseDeadline(time.Now().Add(closeTimeout))
}

// confirmTimeout is half the lease, at least 2s: a confirm later than that
// risks the lease running out while the row is still in flight.
func confirmTimeout(lease time.Duration) time.Duration { return max(lease/2, 2*time.Second) }

// errUnconfirmed ends the publish span of a message whose channel closed
// before the broker's confirm: the row is published again (or, while the
// relay looks for the message that made the broker close the channel, found
// to be it: see isolate).
const errUnconfirmed = "no confirm from the broker: the channel closed first"

// resolve records the broker's answer for a row: ack (unless the message
// came back with basic.return) or nack. It returns why the publish failed,
// or "" when the broker took the message. span is the message's publish
// span (nil when tracing is off): a failure is logged inside it.
func (s *session) resolve(rw *row, acked bool, span trace.Span) string {
	// A basic.return arrives before the ack of the same message, and amqp091
	// hands both over in that order: any return is already in s.returns.
	s.drainReturns()
	ret, wasReturned := s.returned[rw.MessageID]
	delete(s.returned, rw.MessageID)
	var failure string
	switch {
	case !acked:
		failure = "nacked by the broker (basic.nack): it could not take the message, " +
			"e.g. a queue with x-overflow=reject-publish is full or the message exceeds its x-max-length-bytes"
	case wasReturned:
		failure = fmt.Sprintf("returned by the broker: %d %s (no queue is bound to exchange %q and the relay publishes with mandatory)",
			ret.ReplyCode, ret.ReplyText, s.cfg.Exchange)
	default:
		s.confirm(rw)
		return ""
	}
	s.failRowContext(spanContext(span), rw, failure, false)
	return failure
}

func (s *session) drainReturns() {
	if s.returns == nil {
		return
	}
	for {
		select {
		case r, ok := <-s.returns:
			if !ok {
				return
			}
			s.returned[r.MessageId] = r
		default:
			return
		}
	}
}

// ackedOnce resets the reconnection backoff at the first confirm of the
// session: a broker that takes connections but closes them again (over a
// message, say) is retried with a growing delay, not in a tight loop.
func (s *session) ackedOnce(acked bool) {
	if acked && !s.acked {
		s.acked = true
		s.backoff.reset()
	}
}

// awaitConfirms waits at most d for the in-flight messages to be confirmed.
func (s *session) awaitConfirms(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for s.outstanding.Load() > 0 {
		select {
		case <-s.progress:
		case <-s.chDone:
			return
		case <-t.C:
			return
		}
	}
}

// closeReason fills in why the channel closed. A connection that broke is
// marked closed before its channels are.
func (s *session) closeReason(out *outcome) {
	select {
	case <-s.chDone:
		if s.closeErr != nil {
			out.err = s.closeErr
		}
	default:
	}
	out.connLost = s.conn.IsClosed()
}

// isolate publishes the suspects one at a time, each waiting for its confirm,
// to find the message that made the broker close the previous channel or
// connection. That row fails (retry with backoff, or dead); the suspects
// after it are released. It reports ended when the session is over (the
// channel closed again or ctx is done).
func (s *session) isolate(suspects []*row) (outcome, bool) {
	for i, rw := range suspects {
		if time.Now().After(rw.publishBy) {
			s.release(suspects[i:]...)
			return outcome{}, false
		}
		msg, err := s.message(rw)
		if err != nil {
			s.failRow(rw, err.Error(), true)
			continue
		}
		span := s.startPublish(rw, &msg)
		dc, err := s.ch.PublishWithDeferredConfirmWithContext(context.Background(), s.cfg.Exchange, rw.Topic, s.cfg.Mandatory, false, msg)
		if err == nil {
			select {
			case <-dc.Done():
			case <-s.ctx.Done():
				s.closeConn()
			}
			s.awaitConfirm(dc)
			if dc.Acked() || !s.ch.IsClosed() {
				endPublish(span, s.resolve(rw, dc.Acked(), span))
				s.ackedOnce(dc.Acked())
				continue
			}
		}
		endPublish(span, errUnconfirmed)
		// The channel closed: this row is the culprit if the broker closed
		// the channel, or the connection over the message's content, over it;
		// not if the connection broke otherwise or we stopped.
		<-s.chDone
		var out outcome
		s.closeReason(&out)
		if out.err == nil || (out.connLost && !contentError(out.err)) || s.ctx.Err() != nil {
			out.unconfirmed = suspects[i:]
			return out, true
		}
		s.log.Info("found the message the broker refused", "event_id", rw.ID, "message_id", rw.MessageID, "suspects", len(suspects))
		s.fail(rw, "refused by the broker: "+out.err.Error())
		s.release(suspects[i+1:]...)
		return out, true
	}
	return outcome{}, false
}

// contentError reports whether the broker closed the connection over what a
// message held (a frame it could not take: too large, malformed), rather
// than because it went away.
func contentError(err error) bool {
	var e *amqp.Error
	if !errors.As(err, &e) || !e.Server {
		return false
	}
	switch e.Code {
	case amqp.FrameError, amqp.SyntaxError, amqp.CommandInvalid, amqp.UnexpectedFrame:
		return true
	}
	return false
}

// awaitKey waits, with StrictOrder, until no message of rw's key is in
// flight: the publisher then sees (barred) whether the previous one failed.
// It reports false when the channel is gone or ctx is done.
func (s *session) awaitKey(rw *row) bool {
	if !s.cfg.StrictOrder || rw.Key == "" {
		return true
	}
	for {
		s.keyMu.Lock()
		n := s.keyInflight[rw.Key]
		s.keyMu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-s.keyDone:
		case <-s.chDone:
			return false
		case <-s.ctx.Done():
			return false
		}
	}
}

// keyPublished counts rw in flight for its key (StrictOrder).
func (s *session) keyPublished(rw *row) {
	if !s.cfg.StrictOrder || rw.Key == "" {
		return
	}
	s.keyMu.Lock()
	s.keyInflight[rw.Key]++
	if n := int64(s.keyInflight[rw.Key]); n > s.keyPeak.Load() {
		s.keyPeak.Store(n)
	}
	s.keyMu.Unlock()
}

// keyResolved counts rw out of flight for its key and wakes the publisher
// (StrictOrder).
func (s *session) keyResolved(rw *row) {
	if !s.cfg.StrictOrder || rw.Key == "" {
		return
	}
	s.keyMu.Lock()
	if s.keyInflight[rw.Key]--; s.keyInflight[rw.Key] <= 0 {
		delete(s.keyInflight, rw.Key)
	}
	s.keyMu.Unlock()
	signal(s.keyDone)
}
