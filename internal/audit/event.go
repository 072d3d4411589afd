// Package audit records security and data-access events: one row in the audit_events table and one
// structured log line per event, carrying the same fields, so that the log can be shipped to a
// separate append-only sink while the table answers "who did what to whom" for administrators.
//
// Events never carry secrets nor result contents: details take only allow-listed keys, and every
// value is length-capped and escaped so that it prints on one line.
package audit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Event types. The set is closed: Record refuses any other, so that a misspelt type cannot slip
// past the scenario tests that count events by type.
const (
	LoginSucceeded = "login.succeeded"
	LoginFailed    = "login.failed" // details: factor ("password", "totp", "recovery")
	MFAFailed      = "mfa.failed"
	AccountLocked  = "account.locked"

	TokenIssued          = "token.issued" // details: grant, jti, family, scope
	TokenRefreshed       = "token.refreshed"
	TokenRevoked         = "token.revoked" // details: reason
	RefreshReuseDetected = "refresh.reuse_detected"
	SessionRevoked       = "session.revoked"

	PasswordChanged        = "password.changed"
	PasswordResetRequested = "password.reset_requested"
	PasswordResetCompleted = "password.reset_completed"
	PasswordExpired        = "password.expired"    // an administrator forced a change
	PermissionsChanged     = "permissions.changed" // details: before, after
	UserDeleted            = "user.deleted"
	UserDeactivated        = "user.deactivated" // ends the user's sessions
	OrgDeactivated         = "organization.deactivated"

	ResultRead        = "result.read"
	ResultListed      = "result.listed" // SubjectID: the user or group whose results were listed
	ResultCreated     = "result.created"
	ResultUpdated     = "result.updated"
	ResultDeleted     = "result.deleted"
	ResultFeedbackSet = "result.feedback_set" // details: before, after
	// ResultDenied is for an attempt refused before its action is known; a refused read, change or
	// deletion is recorded under that action's type with OutcomeDenied.
	ResultDenied = "result.denied"

	// AuditRead: the audit log is itself sensitive (it tells who read whose results).
	AuditRead = "audit.read"
)

var knownTypes = []string{
	LoginSucceeded, LoginFailed, MFAFailed, AccountLocked,
	TokenIssued, TokenRefreshed, TokenRevoked, RefreshReuseDetected, SessionRevoked,
	PasswordChanged, PasswordResetRequested, PasswordResetCompleted, PasswordExpired,
	PermissionsChanged, UserDeleted, UserDeactivated, OrgDeactivated,
	ResultRead, ResultListed, ResultCreated, ResultUpdated, ResultDeleted, ResultFeedbackSet,
	ResultDenied, AuditRead,
}

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"  // refused by an authorization rule
	OutcomeFailure = "failure" // attempted and failed: a wrong password, an invalid request
)

// detailKeys are the only keys Details may hold. Each names something safe to keep for years:
// identifiers (a token's jti, a refresh family), the grant or factor used, a reason chosen by the
// code, and before/after values of a permission or date change. Never a token, a password, a code
// or a result's contents. They are sorted: an event's details are written in this order.
var detailKeys = []string{"after", "before", "factor", "family", "grant", "jti", "reason", "scope"}

// Length caps, in bytes after escaping. Larger inputs are cut and marked with "…".
const (
	maxID        = 128 // actor, client, organization, subject, request ids; the IP
	maxRoute     = 256
	maxUserAgent = 256
	maxDetail    = 512 // before/after may hold a list of permissions
)

// ErrInvalidEvent is returned by Record for an event it refuses to store.
var ErrInvalidEvent = errors.New("audit: invalid event")

// Event is one audited action.
type Event struct {
	ID        string            `json:"id"` // UUIDv7, assigned by Record
	At        time.Time         `json:"at"` // UTC, assigned by Record
	Type      string            `json:"type"`
	Outcome   string            `json:"outcome"`
	ActorID   string            `json:"actor_id"`   // the acting user's sub; "" for anonymous
	ClientID  string            `json:"client_id"`  // the OAuth client the actor came through
	OrgID     string            `json:"org_id"`     // the organization the event is about; "" for platform
	SubjectID string            `json:"subject_id"` // whom or what the action was about: a user, a result
	Route     string            `json:"route"`      // the route pattern, "GET /api/results/{result}", never the raw URL
	RequestID string            `json:"request_id"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent"`
	Details   map[string]string `json:"details,omitempty"`
}

// sanitize checks the fields the code chooses (type, outcome, detail keys) and makes the ones a
// request can influence safe to store and print: capped and escaped.
func sanitize(e Event) (Event, error) {
	if !slices.Contains(knownTypes, e.Type) {
		return Event{}, fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, clean(e.Type, 64))
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeDenied, OutcomeFailure:
	default:
		return Event{}, fmt.Errorf("%w: unknown outcome %q", ErrInvalidEvent, clean(e.Outcome, 64))
	}
	details, err := sanitizeDetails(e.Details)
	if err != nil {
		return Event{}, err
	}
	e.Details = details
	e.ActorID = clean(e.ActorID, maxID)
	e.ClientID = clean(e.ClientID, maxID)
	e.OrgID = clean(e.OrgID, maxID)
	e.SubjectID = clean(e.SubjectID, maxID)
	e.RequestID = clean(e.RequestID, maxID)
	e.IP = clean(e.IP, maxID)
	e.Route = clean(e.Route, maxRoute)
	e.UserAgent = clean(e.UserAgent, maxUserAgent)
	return e, nil
}

// sanitizeDetails refuses the whole event on one unknown key rather than dropping the key: a
// caller putting a password under "password" must learn it from its tests, and nothing of that
// event may be stored. The error names the key, never the value.
func sanitizeDetails(in map[string]string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for _, k := range detailKeys {
		if v, ok := in[k]; ok {
			out[k] = clean(v, maxDetail)
		}
	}
	if len(out) != len(in) {
		for _, k := range slices.Sorted(maps.Keys(in)) { // the first unknown key, the same each time
			if !slices.Contains(detailKeys, k) {
				return nil, fmt.Errorf("%w: detail key %q is not allowed", ErrInvalidEvent, clean(k, 32))
			}
		}
	}
	return out, nil
}

// clean makes s safe to store and print on one line (AU-02, log injection): invalid UTF-8 becomes
// U+FFFD; control characters, line and paragraph separators and bidirectional controls become \u
// escapes; a backslash is doubled so that an escape sent in the input cannot pass for one made
// here. The result is at most limit bytes; a cut falls between characters and is marked with "…".
func clean(s string, limit int) string {
	if len(s) <= limit && !needsCleaning(s) {
		return s // the common case, without a copy
	}
	const mark = "…"
	var b strings.Builder
	fit := 0 // the length of b's longest prefix that leaves room for the mark
	for _, r := range s {
		b.WriteString(escape(r))
		if b.Len() <= limit-len(mark) {
			fit = b.Len()
		}
		if b.Len() > limit {
			return b.String()[:fit] + mark
		}
	}
	return b.String()
}

func escape(r rune) string {
	switch {
	case r == '\\':
		return `\\`
	case isUnsafe(r):
		return fmt.Sprintf(`\u%04x`, r)
	}
	return string(r)
}

// needsCleaning reports whether clean would change s (beyond cutting it): invalid UTF-8, or a
// rune that escape rewrites. A literal U+FFFD counts, which only costs that string the slow path.
func needsCleaning(s string) bool {
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || isUnsafe(r) {
			return true
		}
	}
	return false
}

// isUnsafe: the runes that could break a log line or disguise its text.
func isUnsafe(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}
