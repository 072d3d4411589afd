package audit

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portaria/portaria/internal/sqldb"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations creates the audit_events table; apply it with (*sqldb.DB).Migrate before New.
var Migrations = sqldb.MigrationSet{Name: "audit", FS: migrationFiles, Dir: "migrations"}

// storeTimeout bounds the insert of one event. Record does not inherit the caller's cancellation:
// a client hanging up must not erase the trace of what it just did.
const storeTimeout = 5 * time.Second

// Log records audit events. It only inserts and reads: there is no API to change or delete an
// event (pruning by age is an operator's SQL, see docs/audit.md).
type Log struct {
	db          *sqldb.DB
	insertQuery string // one row, with the dialect's placeholders
	logger      *slog.Logger
	now         func() time.Time
	ids         idSource

	queueOnce sync.Once
	pending   chan Event // events of Enqueue waiting for Run
}

// New returns a Log on a database migrated with Migrations. logger receives one line per event;
// now is the clock of the events' At and ids (time.Now when nil).
func New(db *sqldb.DB, logger *slog.Logger, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{db: db, insertQuery: insertQuery(db.Dialect), logger: logger, now: now}
}

// Record stores e and writes it as one log line (msg "audit"; WARN for refresh-token reuse, which
// is worth an alert, INFO otherwise). It assigns the ID and At itself, ignoring the caller's.
// An event with an unknown type, outcome or detail key is refused with ErrInvalidEvent and goes
// nowhere. When the insert fails the line is still written, so that the event reaches the log
// sink, and the error is returned.
func (l *Log) Record(ctx context.Context, e Event) error {
	e, err := l.stamp(e)
	if err != nil {
		return err
	}
	err = l.insert(ctx, []Event{e})
	l.writeLine(ctx, e)
	if err != nil {
		return fmt.Errorf("record audit event %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// stamp checks and cleans e (sanitize) and gives it its ID and At, ignoring the caller's.
func (l *Log) stamp(e Event) (Event, error) {
	e, err := sanitize(e)
	if err != nil {
		return Event{}, fmt.Errorf("record audit event: %w", err)
	}
	at := l.now()
	e.ID = l.ids.next(at)
	// Microseconds are what PostgreSQL keeps: the row and the line then carry the same time.
	e.At = at.UTC().Truncate(time.Microsecond)
	return e, nil
}

// writeLine logs e with the names of Event's JSON fields and of the table's columns, so that the
// log sink and the table can be read with one schema.
func (l *Log) writeLine(ctx context.Context, e Event) {
	level := slog.LevelInfo
	if e.Type == RefreshReuseDetected {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("id", e.ID),
		slog.String("at", e.At.Format(time.RFC3339Nano)),
		slog.String("type", e.Type),
		slog.String("outcome", e.Outcome),
		slog.String("actor_id", e.ActorID),
		slog.String("client_id", e.ClientID),
		slog.String("org_id", e.OrgID),
		slog.String("subject_id", e.SubjectID),
		slog.String("route", e.Route),
		slog.String("request_id", e.RequestID),
		slog.String("ip", e.IP),
		slog.String("user_agent", e.UserAgent),
	}
	if len(e.Details) > 0 {
		details := make([]slog.Attr, 0, len(e.Details))
		for _, k := range detailKeys { // sanitize let no other key through
			if v, ok := e.Details[k]; ok {
				details = append(details, slog.String(k, v))
			}
		}
		attrs = append(attrs, slog.GroupAttrs("details", details...))
	}
	l.logger.LogAttrs(ctx, level, "audit", attrs...)
}
