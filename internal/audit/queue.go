package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

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
	e, err := l.stamp(e)
	if err != nil {
		return err
	}
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

// insert stores events: one alone with one statement, several in one transaction of one
// prepared statement. A multi-row INSERT cost SQLite more per row: with the values inlined, as
// bun builds it, twice the CPU (parsing them); with placeholders, prepared once, 1.4 times. The
// queries bypass bun's formatting: the arguments go to the driver as they are.
func (l *Log) insert(ctx context.Context, events []Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	var err error
	if len(events) == 1 {
		_, err = l.db.DB.DB.ExecContext(ctx, l.insertQuery, rowArgs(events[0])...)
	} else {
		err = l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			stmt, err := tx.PrepareContext(ctx, l.insertQuery)
			if err != nil {
				return err
			}
			defer stmt.Close()
			// The SQLite driver starts a goroutine per statement to watch a cancellable
			// context; one row's insert is too short to be worth interrupting, and the
			// transaction's own context still bounds the batch.
			rowCtx := ctx
			if l.db.Dialect == sqldb.SQLite {
				rowCtx = context.WithoutCancel(ctx)
			}
			for _, e := range events {
				if _, err := stmt.ExecContext(rowCtx, rowArgs(e)...); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("store %d audit events: %w", len(events), sqldb.Translate(err))
	}
	return nil
}

// rowArgs are the arguments of insertQuery for e.
func rowArgs(e Event) []any {
	r := toRow(e)
	return []any{r.ID, r.At, r.Type, r.Outcome, r.ActorID, r.ClientID, r.OrgID, r.SubjectID, r.Route,
		r.RequestID, r.IP, r.UserAgent, r.Details}
}

// insertQuery is the INSERT of one event row, in the column order insert passes them.
func insertQuery(d sqldb.Dialect) string {
	cols := []string{"id", "at", "type", "outcome", "actor_id", "client_id", "org_id", "subject_id",
		"route", "request_id", "ip", "user_agent", "details"}
	marks := make([]string, len(cols))
	for i := range marks {
		marks[i] = "?"
		if d == sqldb.Postgres {
			marks[i] = "$" + strconv.Itoa(i+1)
		}
	}
	return "INSERT INTO audit_events (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
}
