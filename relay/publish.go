package relay

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// confirmGrace is how long a stopping relay waits for outstanding confirms.
const confirmGrace = 5 * time.Second

// session is one confirm-mode channel: a publisher (the caller of run) that
// publishes the claimed batches, and a confirmer goroutine that matches the
// broker's confirms to rows. Publishes are pipelined: up to Window messages
// wait for their confirm at once.
type session struct {
	*run
	conn *amqp.Connection
	ch   *amqp.Channel

	closes   <-chan *amqp.Error
	confirms <-chan amqp.Confirmation // in delivery-tag order; closed with the channel
	returns  <-chan amqp.Return       // nil unless Mandatory

	// inflight holds the published, unconfirmed messages in publish order. Its
	// capacity is the window: the publisher blocks when it is full.
	inflight chan inflight
	returned map[string]amqp.Return // by message id; confirmer only

	chDone   chan struct{} // closed by the confirmer when the channel is gone
	pubDone  chan struct{} // closed when the publisher stopped
	progress chan struct{} // a confirm was handled
}

type inflight struct {
	tag uint64
	row *row
}

// outcome is how a session ended.
type outcome struct {
	unconfirmed []*row // published (or not) without a confirm, in publish order
	err         error  // why the channel closed; nil after a clean close
	connLost    bool   // the whole connection is gone (not just the channel)
}

// serve publishes until the channel closes or ctx is done. It first publishes
// suspects (rows unconfirmed when the previous channel failed) one at a time.
func (s *session) serve(suspects []*row) outcome {
	if out, ended := s.isolate(suspects); ended {
		return out
	}
	s.returned = map[string]amqp.Return{}
	s.chDone = make(chan struct{})
	s.pubDone = make(chan struct{})
	s.progress = make(chan struct{}, 1)
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
		// Stopping: give the outstanding confirms a moment, then close.
		s.awaitConfirms(confirmGrace)
		_ = s.ch.Close()
	}
	return <-outc
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

// publishBatch publishes b's rows in order. It stops and releases the rest
// when the batch became stale (see batch.epoch) or its lease is running out;
// it reports false when the channel is gone or ctx is done.
func (s *session) publishBatch(b *batch) bool {
	first := true
	for i, rw := range b.rows {
		if s.epoch.Load() != b.epoch || time.Now().After(b.publishBy) {
			s.release(b.rows[i:]...)
			break
		}
		if first {
			signal(s.kick) // the claimer may prefetch the next batch
			first = false
		}
		msg, err := message(rw)
		if err != nil {
			s.fail(rw, err.Error()) // the rest of the batch goes stale
			continue
		}
		select {
		case s.inflight <- inflight{tag: s.ch.GetNextPublishSeqNo(), row: rw}:
		case <-s.chDone:
			s.release(b.rows[i:]...)
			return false
		case <-s.ctx.Done():
			s.release(b.rows[i:]...)
			return false
		}
		if err := s.ch.PublishWithContext(context.Background(), s.cfg.Exchange, "", s.cfg.Mandatory, false, msg); err != nil {
			// The channel or the connection is gone. rw is in inflight and
			// counts as unconfirmed; the confirmer will see the close.
			s.release(b.rows[i+1:]...)
			return false
		}
	}
	if first {
		signal(s.kick)
	}
	return true
}

// confirmLoop matches confirms to rows until the channel closes, then
// collects what stayed unconfirmed.
func (s *session) confirmLoop() outcome {
	for c := range s.confirms {
		s.handleConfirm(c)
		signal(s.progress)
	}
	close(s.chDone)
	<-s.pubDone
	var out outcome
	for {
		select {
		case f := <-s.inflight:
			out.unconfirmed = append(out.unconfirmed, f.row)
			continue
		default:
		}
		break
	}
	s.closeReason(&out)
	return out
}

func (s *session) handleConfirm(c amqp.Confirmation) {
	f := <-s.inflight // pushed before it was published
	if f.tag != c.DeliveryTag {
		// amqp091 delivers confirms in tag order, so this cannot happen;
		// should it, do not guess: publish the row again.
		s.log.Error("publisher confirm out of order; releasing the row", "tag", c.DeliveryTag, "want", f.tag, "id", f.row.ID)
		s.release(f.row)
		return
	}
	// A basic.return arrives before the ack of the same message, and amqp091
	// hands both over in that order: any return is already in s.returns.
	s.drainReturns()
	ret, wasReturned := s.returned[f.row.MessageID]
	switch {
	case !c.Ack:
		s.fail(f.row, "nacked by the broker (basic.nack): it could not take the message, "+
			"e.g. a queue with x-overflow=reject-publish is full or the message exceeds its x-max-length-bytes")
	case wasReturned:
		delete(s.returned, f.row.MessageID)
		s.fail(f.row, fmt.Sprintf("returned by the broker: %d %s (no queue is bound to exchange %q and the relay publishes with mandatory)",
			ret.ReplyCode, ret.ReplyText, s.cfg.Exchange))
	default:
		s.confirm(f.row)
	}
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

// awaitConfirms waits at most d for the in-flight messages to be confirmed.
func (s *session) awaitConfirms(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for len(s.inflight) > 0 {
		select {
		case <-s.progress:
		case <-s.chDone:
			return
		case <-t.C:
			return
		}
	}
}

// closeReason fills in why the channel closed. The broker's close reason is
// queued on s.closes before the confirms channel closes; a connection that
// broke is marked closed before its channels are.
func (s *session) closeReason(out *outcome) {
	select {
	case e, ok := <-s.closes:
		if ok && e != nil {
			out.err = e
		}
	default:
	}
	out.connLost = s.conn.IsClosed()
}

// isolate publishes the suspects one at a time, each waiting for its confirm,
// to find the message that made the broker close the previous channel. That
// row fails (retry with backoff, or dead); the suspects after it are released.
// It reports ended when the session is over (the channel closed again or ctx
// is done).
func (s *session) isolate(suspects []*row) (outcome, bool) {
	if len(suspects) == 0 {
		return outcome{}, false
	}
	s.returned = map[string]amqp.Return{}
	for i, rw := range suspects {
		msg, err := message(rw)
		if err != nil {
			s.fail(rw, err.Error())
			continue
		}
		tag := s.ch.GetNextPublishSeqNo()
		if err := s.ch.PublishWithContext(context.Background(), s.cfg.Exchange, "", s.cfg.Mandatory, false, msg); err != nil {
			out := outcome{unconfirmed: suspects[i:], err: err}
			out.connLost = s.conn.IsClosed()
			return out, true
		}
		select {
		case c, ok := <-s.confirms:
			if !ok {
				var out outcome
				s.closeReason(&out)
				if out.connLost || out.err == nil {
					out.unconfirmed = suspects[i:]
					return out, true
				}
				s.fail(rw, "refused by the broker: "+out.err.Error())
				s.release(suspects[i+1:]...)
				return out, true
			}
			if c.DeliveryTag != tag {
				s.release(suspects[i:]...)
				return outcome{err: fmt.Errorf("publisher confirm %d, want %d", c.DeliveryTag, tag)}, true
			}
			s.inflight <- inflight{tag: tag, row: rw}
			s.handleConfirm(c)
		case <-s.ctx.Done():
			return outcome{unconfirmed: suspects[i:]}, true
		}
	}
	return outcome{}, false
}
