package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/portaria/portaria/internal/sqldb"
)

// Queue sizes of Enqueue: events wait at most flushEvery (or until a batch is full) before one
// multi-row insert stores them; a full queue makes Enqueue store its event itself.
const (
	queueSize  = 4096
	batchSize  = 256
	flushEvery = 100 * time.Millisecond
)

// Enqueue is Record for the hot paths (token issuance, logins): the log line is written at once,
// so the event reaches the log sink with the request, and the row is stored by Run in batches,
// within flushEvery. When the queue is full (Run not running, or not keeping up) the event is
// stored synchronously, so none is dropped; a queued row is lost only if the process dies before
// Run stores it, and even then its log line was written.
func (l *Log) Enqueue(ctx context.Context, e Event) error {
	e, err := sanitize(e)
	if err != nil {
		return fmt.Errorf("record audit event: %w", err)
	}
	at := l.now()
	e.ID = l.ids.next(at)
	e.At = at.UTC().Truncate(time.Microsecond)
	l.writeLine(ctx, e)
	select {
	case l.queue() <- e:
		return nil
	default:
		return l.insert(ctx, []Event{e})
	}
}

// queue returns the channel of Enqueue, made once.
func (l *Log) queue() chan Event {
	l.queueOnce.Do(func() { l.pending = make(chan Event, queueSize) })
	return l.pending
}

// Run stores enqueued events until ctx ends, then stores what is left and returns.
func (l *Log) Run(ctx context.Context) {
	q := l.queue()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	batch := make([]Event, 0, batchSize)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := l.insert(context.Background(), batch); err != nil {
			l.logger.Error("audit events not stored", "events", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case e := <-q:
			if batch = append(batch, e); len(batch) == batchSize {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-q:
					batch = append(batch, e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// insert stores events in one statement.
func (l *Log) insert(ctx context.Context, events []Event) error {
	rows := make([]*eventRow, len(events))
	for i, e := range events {
		rows[i] = toRow(e)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if _, err := l.db.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("store %d audit events: %w", len(events), sqldb.Translate(err))
	}
	return nil
}
