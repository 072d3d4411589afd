package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// maxBackoff caps the delay between two attempts at one message.
const maxBackoff = time.Minute

var (
	// ErrQueueFull is returned by Enqueue when the queue holds Size messages.
	ErrQueueFull = errors.New("mail: queue full")
	// ErrQueueClosed is returned by Enqueue after Close.
	ErrQueueClosed = errors.New("mail: queue closed")
)

// QueueOptions tune a Queue. Zero values take the defaults.
type QueueOptions struct {
	Size    int           // messages waiting at most; default 1000
	Workers int           // concurrent sends; default 2
	Retries int           // attempts after the first; default 5, negative for none
	Backoff time.Duration // delay before the first retry, doubling up to 1 min, jittered; default 1 s
	Logger  *slog.Logger  // default slog.Default()
	Now     func() time.Time
}

// Queue sends messages in the background so that no request waits for the mail server (RL-07).
// It is bounded: when it is full, Enqueue fails at once instead of growing or blocking.
//
// Log lines name a message by recipient and subject only, never by its body: bodies carry
// tokens.
type Queue struct {
	sender Sender
	opts   QueueOptions
	log    *slog.Logger
	ch     chan queued

	mu      sync.RWMutex // guards closed against sends on a closed ch, and workers.Add
	closed  bool
	workers sync.WaitGroup

	// stop aborts the workers' in-flight sends once Close runs out of time.
	stop       context.Context
	cancelStop context.CancelFunc
}

type queued struct {
	m  Message
	at time.Time
}

// NewQueue returns a queue that hands messages to sender once Run is called.
func NewQueue(sender Sender, opts QueueOptions) *Queue {
	if opts.Size <= 0 {
		opts.Size = 1000
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = 5
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	stop, cancel := context.WithCancel(context.Background())
	return &Queue{
		sender:     sender,
		opts:       opts,
		log:        opts.Logger,
		ch:         make(chan queued, opts.Size),
		stop:       stop,
		cancelStop: cancel,
	}
}

// Enqueue queues m without blocking. It fails when m cannot be sent (invalid recipient or
// header), when the queue is full and after Close; a message refused for lack of room or
// after Close is also logged, so that it is never lost silently.
func (q *Queue) Enqueue(m Message) error {
	if _, err := m.validate(); err != nil {
		return err
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.log.Error("mail not queued: queue closed", "to", m.To, "subject", m.Subject)
		return ErrQueueClosed
	}
	select {
	case q.ch <- queued{m: m, at: q.opts.Now()}:
		return nil
	default:
		q.log.Error("mail not queued: queue full", "to", m.To, "subject", m.Subject, "size", q.opts.Size)
		return ErrQueueFull
	}
}

// Run sends queued messages with Workers workers until ctx ends or the queue is closed and
// empty, and returns when they have stopped. Call it once, in its own goroutine. A message
// whose sending ctx interrupts is logged as unsent; what is still queued stays for Close.
func (q *Queue) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(q.stop, cancel)()

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.workers.Add(q.opts.Workers)
	q.mu.Unlock()

	for range q.opts.Workers {
		go func() {
			defer q.workers.Done()
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					return
				case job, ok := <-q.ch:
					if !ok {
						return
					}
					q.deliver(ctx, job)
				}
			}
		}()
	}
	q.workers.Wait()
}

// Close stops accepting messages and sends what is queued until ctx ends, alongside the
// workers if Run is still going. What cannot be sent by then is logged as unsent, and Close
// returns an error.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.ch)
	q.mu.Unlock()

	unsent := 0
	for job := range q.ch {
		if ctx.Err() != nil {
			q.logUnsent(job, ctx.Err())
			unsent++
			continue
		}
		if !q.deliver(ctx, job) {
			unsent++
		}
	}

	// Once Close returns, interrupt whatever the workers still do: each logs its message.
	defer q.cancelStop()
	done := make(chan struct{})
	go func() {
		q.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		default:
			return fmt.Errorf("mail: queue closed before every message was sent: %w", ctx.Err())
		}
	}
	if unsent > 0 && ctx.Err() != nil {
		return fmt.Errorf("mail: queue closed with %d messages unsent: %w", unsent, ctx.Err())
	}
	return nil
}

// deliver sends one message, retrying with backoff, and reports whether it was sent. Every
// way of failing is logged.
func (q *Queue) deliver(ctx context.Context, job queued) bool {
	attempts := 1 + q.opts.Retries
	for attempt := 1; ; attempt++ {
		err := q.sender.Send(ctx, job.m)
		if err == nil {
			q.log.Debug("mail sent", "to", job.m.To, "subject", job.m.Subject, "attempt", attempt)
			return true
		}
		if ctx.Err() != nil {
			q.logUnsent(job, err)
			return false
		}
		if attempt == attempts || errors.Is(err, ErrPermanent) {
			q.log.Error("mail lost: giving up", "to", job.m.To, "subject", job.m.Subject,
				"attempts", attempt, "queued_for", q.opts.Now().Sub(job.at), "err", err)
			return false
		}
		delay := q.backoff(attempt)
		q.log.Warn("mail send failed, will retry", "to", job.m.To, "subject", job.m.Subject,
			"attempt", attempt, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			q.logUnsent(job, err)
			return false
		}
	}
}

func (q *Queue) logUnsent(job queued, err error) {
	q.log.Error("mail unsent: stopped before delivery", "to", job.m.To, "subject", job.m.Subject,
		"queued_for", q.opts.Now().Sub(job.at), "err", err)
}

// backoff is the delay before retry number attempt: Backoff doubled per attempt, capped at
// maxBackoff, with equal jitter (half fixed, half random) so that messages failing together
// do not retry together.
func (q *Queue) backoff(attempt int) time.Duration {
	d := q.opts.Backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}
