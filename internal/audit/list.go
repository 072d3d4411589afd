package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/uptrace/bun"
)

// Page sizes of List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ErrInvalidQuery is returned by List for a query it cannot answer: no organization without
// Platform, a negative limit, a cursor it did not make.
var ErrInvalidQuery = errors.New("audit: invalid query")

// Query selects events for List, newest first.
type Query struct {
	// OrgID limits the events to one organization. It is required unless Platform is set, so that
	// forgetting it can never list every tenant's events.
	OrgID string
	// Platform lists every organization's events and the platform's own; OrgID, if set, still
	// narrows to one organization. Only a platform administrator's query may set it.
	Platform bool

	// Optional filters; empty means any.
	Type      string
	SubjectID string
	ActorID   string

	Limit  int    // 0 means DefaultLimit; more than MaxLimit means MaxLimit
	Cursor string // the next value of the previous page; "" for the first page
}

// List returns one page of the events q selects, newest first, and the cursor of the next page
// ("" after the last). Pages are cut on the id, so events recorded meanwhile neither repeat nor
// shift a page.
func (l *Log) List(ctx context.Context, q Query) ([]Event, string, error) {
	limit, after, err := checkQuery(q)
	if err != nil {
		return nil, "", err
	}
	var rows []eventRow
	sel := l.db.NewSelect().Model(&rows).OrderExpr("id DESC").Limit(int64(limit) + 1)
	sel = filter(sel, q, after)
	if err := sel.Scan(ctx); err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", sqldb.Translate(err))
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].ID)
	}
	events := make([]Event, 0, len(rows))
	for _, r := range rows {
		e, err := r.event()
		if err != nil {
			return nil, "", err
		}
		events = append(events, e)
	}
	return events, next, nil
}

// InvalidFilterError names a filter of a Query that no event can match: invalid UTF-8 or a
// control character, which events never hold (sanitize) and databases may refuse (a NUL).
type InvalidFilterError struct{ Field string }

func (e *InvalidFilterError) Error() string { return "audit: invalid filter " + e.Field }

func (e *InvalidFilterError) Unwrap() error { return ErrInvalidQuery }

func checkQuery(q Query) (limit int, after string, err error) {
	if q.OrgID == "" && !q.Platform {
		return 0, "", fmt.Errorf("%w: an organization is required", ErrInvalidQuery)
	}
	for _, f := range []struct{ name, value string }{{"org", q.OrgID}, {"type", q.Type}, {"subject_id", q.SubjectID}, {"actor_id", q.ActorID}} {
		if !utf8.ValidString(f.value) || strings.ContainsFunc(f.value, isUnsafe) {
			return 0, "", &InvalidFilterError{Field: f.name}
		}
	}
	switch {
	case q.Limit < 0:
		return 0, "", fmt.Errorf("%w: negative limit", ErrInvalidQuery)
	case q.Limit == 0:
		limit = DefaultLimit
	default:
		limit = min(q.Limit, MaxLimit)
	}
	if q.Cursor != "" {
		if after, err = decodeCursor(q.Cursor); err != nil {
			return 0, "", err
		}
	}
	return limit, after, nil
}

func filter(sel *bun.SelectQuery, q Query, after string) *bun.SelectQuery {
	if q.OrgID != "" {
		sel = sel.Where("org_id = ?", q.OrgID)
	}
	if q.Type != "" {
		sel = sel.Where("type = ?", q.Type)
	}
	if q.SubjectID != "" {
		sel = sel.Where("subject_id = ?", q.SubjectID)
	}
	if q.ActorID != "" {
		sel = sel.Where("actor_id = ?", q.ActorID)
	}
	if after != "" {
		sel = sel.Where("id < ?", after)
	}
	return sel
}

// A cursor is the last id of a page, base64url-encoded: opaque to clients, so that its shape can
// change without breaking them.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// decodeCursor accepts only the canonical form of a UUID, as encodeCursor makes it.
func decodeCursor(cursor string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		var u uuid.UUID
		if u, err = uuid.Parse(string(raw)); err == nil && u.String() == string(raw) {
			return string(raw), nil
		}
	}
	return "", fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
}

type eventRow struct {
	bun.BaseModel `bun:"table:audit_events"`

	ID        string    `bun:"id,pk"`
	At        time.Time `bun:"at"`
	Type      string    `bun:"type"`
	Outcome   string    `bun:"outcome"`
	ActorID   string    `bun:"actor_id"`
	ClientID  string    `bun:"client_id"`
	OrgID     string    `bun:"org_id"`
	SubjectID string    `bun:"subject_id"`
	Route     string    `bun:"route"`
	RequestID string    `bun:"request_id"`
	IP        string    `bun:"ip"`
	UserAgent string    `bun:"user_agent"`
	Details   string    `bun:"details"` // a JSON object of strings
}

func toRow(e Event) *eventRow {
	return &eventRow{
		ID: e.ID, At: e.At, Type: e.Type, Outcome: e.Outcome,
		ActorID: e.ActorID, ClientID: e.ClientID, OrgID: e.OrgID, SubjectID: e.SubjectID,
		Route: e.Route, RequestID: e.RequestID, IP: e.IP, UserAgent: e.UserAgent,
		Details: detailsJSON(e.Details),
	}
}

// detailsJSON is the details column: what json.Marshal makes of sanitized details (keys sorted),
// without its reflection, which cost a stored event as much as its log line's formatting.
func detailsJSON(d map[string]string) string {
	if len(d) == 0 {
		return "{}"
	}
	b := make([]byte, 0, 32*len(d))
	b = append(b, '{')
	for _, k := range detailKeys { // sorted, and sanitize let no other key through
		if v, ok := d[k]; ok {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = appendJSONString(append(appendJSONString(b, k), ':'), v)
		}
	}
	return string(append(b, '}'))
}

// appendJSONString appends s as a JSON string, escaped as encoding/json escapes it (HTML
// characters included), invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func (r eventRow) event() (Event, error) {
	e := Event{
		ID: r.ID, At: r.At.UTC(), Type: r.Type, Outcome: r.Outcome,
		ActorID: r.ActorID, ClientID: r.ClientID, OrgID: r.OrgID, SubjectID: r.SubjectID,
		Route: r.Route, RequestID: r.RequestID, IP: r.IP, UserAgent: r.UserAgent,
	}
	if err := json.Unmarshal([]byte(r.Details), &e.Details); err != nil {
		return Event{}, fmt.Errorf("audit event %s: details: %w", r.ID, err)
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	return e, nil
}
