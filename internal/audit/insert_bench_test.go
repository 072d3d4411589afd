package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
)

// BenchmarkStoreBatch stores batches of events as Run does, on SQLite (the embedded default,
// where the insert's CPU is the server's own). ns/event is what each stored event costs.
func BenchmarkStoreBatch(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db, err := sqldb.Open(context.Background(), testenv.SQLiteURL(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			if err := db.Migrate(context.Background(), Migrations); err != nil {
				b.Fatal(err)
			}
			l := New(db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			events := make([]Event, n)
			for b.Loop() {
				for i := range events {
					events[i], err = l.stamp(Event{Type: TokenIssued, Outcome: OutcomeSuccess, ActorID: "u-0192f1c2", ClientID: "app",
						OrgID: "o-0192", SubjectID: "u-0192f1c2", Route: "POST /oauth/token", RequestID: "req-1", IP: "127.0.0.1",
						UserAgent: "Go-http-client/1.1", Details: map[string]string{"grant": "password", "family": "fam-123", "scope": "openid"}})
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := l.insert(context.Background(), events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

// BenchmarkLine is the cost of an event's log line (checked, stamped, written to a JSON handler).
func BenchmarkLine(b *testing.B) {
	l := &Log{logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), now: time.Now}
	ctx := context.Background()
	for b.Loop() {
		e, err := l.stamp(Event{Type: TokenIssued, Outcome: OutcomeSuccess, ActorID: "u-0192f1c2", ClientID: "app",
			OrgID: "o-0192", SubjectID: "u-0192f1c2", Route: "POST /oauth/token", RequestID: "req-1", IP: "127.0.0.1",
			UserAgent: "Go-http-client/1.1", Details: map[string]string{"grant": "password", "family": "fam-123", "scope": "openid"}})
		if err != nil {
			b.Fatal(err)
		}
		l.writeLine(ctx, e)
	}
}
