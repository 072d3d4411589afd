package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// AuditLog records audit events and lists them; *audit.Log is one. Record stores an event before
// it returns; Enqueue writes its log line at once and stores it in the background, for the
// security events of hot paths (docs/audit.md).
type AuditLog interface {
	Record(ctx context.Context, e audit.Event) error
	Enqueue(ctx context.Context, e audit.Event) error
	List(ctx context.Context, q audit.Query) ([]audit.Event, string, error)
}

// auditor fills and records the audit events of requests, for every handler set.
type auditor struct {
	logger  *slog.Logger
	sink    AuditLog // nil records nothing
	trusted []netip.Prefix
}

func newAuditor(d Deps) auditor {
	return auditor{logger: d.Logger, sink: d.Audit, trusted: d.TrustedProxies}
}

// security records a security event (AU-01) of the request: the route, request id, client IP and
// user agent are the request's; the caller fills who, whom and what. The log line is written at
// once and the row stored in the background (Enqueue), so the hot paths pay no insert each. It
// never fails the request: a failure to store is logged, and the event's log line is written all
// the same.
func (a auditor) security(r *http.Request, e audit.Event) {
	if a.sink == nil {
		return
	}
	e.Route, e.RequestID, e.IP, e.UserAgent = r.Pattern, requestID(r.Context()), clientIP(r, a.trusted), r.UserAgent()
	if err := a.sink.Enqueue(r.Context(), e); err != nil {
		a.logger.ErrorContext(r.Context(), "audit event not stored", "type", e.Type, "err", err, "request_id", e.RequestID)
	}
}

// tokenEvent is the event of an access token minted (AU-01: its jti, the grant and the session
// family): typ is TokenIssued, or TokenRefreshed when a refresh rotated the family. A machine
// token (client_credentials) has no user: no actor, no subject, only its client_id, as at
// /oauth/revoke.
func tokenEvent(typ, grant string, claims tokens.AccessClaims) audit.Event {
	e := audit.Event{Type: typ, Outcome: audit.OutcomeSuccess, ClientID: claims.ClientID, OrgID: claims.Org,
		Details: map[string]string{"grant": grant, "jti": claims.ID, "scope": claims.Scope}}
	if claims.SessionID != "" {
		e.ActorID, e.SubjectID, e.Details["family"] = claims.Subject, claims.Subject, claims.SessionID
	}
	return e
}

// loginEvent is the event of a login step's outcome for clientID (the password grant, the MFA
// grant, the cookie login): success once the user is fully authenticated, failure of the
// password or of the second factor, the account throttled, or a password that must change. A
// step that only asks for the second factor records nothing yet; the step after it does.
func loginEvent(clientID string, u identity.User, err error, factor string) (audit.Event, bool) {
	e := audit.Event{Type: audit.LoginFailed, Outcome: audit.OutcomeFailure, ClientID: clientID,
		Details: map[string]string{"factor": factor}}
	var (
		mfa       *mfaRequiredError
		throttled *throttledError
		expired   *passwordExpiredError
	)
	switch {
	case err == nil:
		e.Type, e.Outcome, e.ActorID, e.SubjectID, e.OrgID = audit.LoginSucceeded, audit.OutcomeSuccess, u.ID, u.ID, u.OrgID
	case errors.As(err, &mfa):
		return e, false
	case errors.As(err, &throttled):
		e.Type, e.Outcome, e.Details["reason"] = audit.AccountLocked, audit.OutcomeDenied, "throttled"
	case errors.As(err, &expired):
		e.Details["reason"] = "password_expired"
	case errors.Is(err, errInvalidOTP):
		e.Type = audit.MFAFailed
	case errors.Is(err, errBadCredentials):
		e.Details["reason"] = "credentials"
	default:
		return e, false // an outage, not an attempt
	}
	return e, true
}

// byCaller is a security event done by the caller of a verified token to subject.
func byCaller(claims tokens.AccessClaims, typ string, err error, subject string, details map[string]string) audit.Event {
	return audit.Event{Type: typ, Outcome: outcomeOf(err), ActorID: claims.Subject, ClientID: claims.ClientID,
		OrgID: claims.Org, SubjectID: subject, Details: details}
}

// errAuditUnavailable answers a read whose audit event could not be stored: sensitive data is
// not handed out without its trace (docs/audit.md).
var errAuditUnavailable = func() *problem {
	p := newProblem(http.StatusServiceUnavailable, "unavailable", "The service is temporarily unavailable.")
	p.header = http.Header{"Retry-After": {"1"}}
	return p
}()

// event is the audit event of a request by an authenticated user: who (the token's subject and
// client), in which organization, through which route (the pattern, never the URL), from
// where. The caller says what it was about.
func (a auditor) event(r *http.Request, claims tokens.AccessClaims, typ string) audit.Event {
	return audit.Event{
		Type: typ, ActorID: claims.Subject, ClientID: claims.ClientID, OrgID: claims.Org,
		Route: r.Pattern, RequestID: requestID(r.Context()), IP: clientIP(r, a.trusted), UserAgent: r.UserAgent(),
	}
}

// resultEvent is the event of an access to results: subject is the result (or the user or group
// whose results were listed), org the organization they belong to when known. Never scores or
// answers: the event names records, it does not copy them.
func (a *assessmentAPI) resultEvent(r *http.Request, claims tokens.AccessClaims, typ, subject, org string) audit.Event {
	e := a.event(r, claims, typ)
	e.SubjectID = subject
	if org != "" {
		e.OrgID = org
	}
	return e
}

// auditRead records a read and answers its error, or errAuditUnavailable when the read
// succeeded but could not be recorded: it then fails closed.
func (a *assessmentAPI) auditRead(r *http.Request, err error, e audit.Event) error {
	if rerr := a.record(r, err, e); err == nil && rerr != nil {
		return errAuditUnavailable
	}
	return err
}

// auditChange records a change (or its refusal) and answers its error. A change that happened
// is answered as done even if its event could not be stored: the log line was written all the
// same, and a client told otherwise would repeat it.
func (a *assessmentAPI) auditChange(r *http.Request, err error, events ...audit.Event) error {
	a.record(r, err, events...)
	return err
}

// record stores the events, each with the outcome of err unless it has its own, and returns
// the first failure to store one (logged, with the request id to find the request).
func (a auditor) record(r *http.Request, err error, events ...audit.Event) error {
	var first error
	for _, e := range events {
		if e.Outcome == "" {
			e.Outcome = outcomeOf(err)
		}
		if rerr := a.sink.Record(r.Context(), e); rerr != nil {
			a.logger.ErrorContext(r.Context(), "audit event not stored", "type", e.Type, "err", rerr, "request_id", requestID(r.Context()))
			if first == nil {
				first = rerr
			}
		}
	}
	return first
}

// outcomeOf is the audit outcome of an action that ended with err: a refusal is every answer
// that withholds a record (403, and 404, which is what another organization's record gets).
func outcomeOf(err error) string {
	if err == nil {
		return audit.OutcomeSuccess
	}
	var p *problem
	if !errors.As(err, &p) {
		p = problemFor(err)
	}
	if p.Status == http.StatusForbidden || p.Status == http.StatusNotFound {
		return audit.OutcomeDenied
	}
	return audit.OutcomeFailure
}

// feedbackSubjects are the results a bulk feedback request is recorded about, with their
// outcome. A validation error that names ids (malformed, or not found: perhaps another
// organization's) records those as refused, as a 404 on one of them would be; otherwise every
// id of the request gets the request's outcome. At most a page of ids is recorded, so that a
// body of thousands of ids, which the service refuses, cannot flood the log; a request that
// names none is one event about no result.
func feedbackSubjects(ids []string, err error) ([]string, string) {
	ids = firstUnique(ids, assessment.MaxPageLimit)
	var ve *assessment.ValidationError
	if errors.As(err, &ve) {
		var named []string
		for _, id := range ids {
			if namedIn(ve, id) {
				named = append(named, id)
			}
		}
		if len(named) > 0 {
			return named, audit.OutcomeDenied
		}
	}
	if len(ids) == 0 {
		return []string{""}, outcomeOf(err)
	}
	return ids, outcomeOf(err)
}

// namedIn reports whether a message on result_ids quotes the id.
func namedIn(ve *assessment.ValidationError, id string) bool {
	for _, f := range ve.Fields {
		if f.Field == "result_ids" && strings.Contains(f.Message, strconv.Quote(id)) {
			return true
		}
	}
	return false
}

// firstUnique is ids without repetitions, in their first order, at most max of them.
func firstUnique(ids []string, max int) []string {
	seen := make(map[string]bool, len(ids))
	var out []string
	for _, id := range ids {
		if len(out) == max {
			break
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// listAudit is GET /api/audit?org=&type=&subject_id=&actor_id=&limit=&cursor=, newest first.
// org:admin reads their own organization's events, platform:admin every organization's (all of
// them, the platform's own included, unless org names one); everyone else gets 403. Each read,
// allowed or not, is itself recorded.
func (a *assessmentAPI) listAudit(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	q, err := a.auditQuery(r, claims)
	var events []audit.Event
	var next string
	if err == nil {
		events, next, err = a.sink.List(r.Context(), q)
	}
	e := a.event(r, claims, audit.AuditRead)
	e.SubjectID = q.OrgID
	if err == nil {
		e.OrgID = q.OrgID
	}
	if err := a.auditRead(r, err, e); err != nil {
		return err
	}
	listOf(w, events, next)
	return nil
}

// auditQuery reads the query of GET /api/audit and authorizes it. The organization is the one
// named, or the caller's own; a platform administrator naming none reads the whole log.
func (a *assessmentAPI) auditQuery(r *http.Request, claims tokens.AccessClaims) (audit.Query, error) {
	v := r.URL.Query()
	q := audit.Query{OrgID: v.Get("org"), Type: v.Get("type"), SubjectID: v.Get("subject_id"), ActorID: v.Get("actor_id")}
	if q.OrgID == "" && !holdsAny(claims, []string{identity.PermPlatformAdmin}) {
		q.OrgID = claims.Org
	}
	if err := a.authorizeAudit(r.Context(), claims, q.OrgID); err != nil {
		return q, err
	}
	q.Platform = q.OrgID == ""
	page, err := pageOf(r)
	q.Limit, q.Cursor = page.Limit, page.Cursor
	return q, err
}

// authorizeAudit decides who reads the audit log of the organization ("" for the whole log).
func (a *assessmentAPI) authorizeAudit(ctx context.Context, claims tokens.AccessClaims, orgID string) error {
	if orgID == "" {
		return authorize(actAuditPlatform, claims, target{})
	}
	o, err := a.accounts.Organization(ctx, orgID)
	if errors.Is(err, identity.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	return authorize(actAuditRead, claims, target{org: o.ID, active: o.Active})
}

// OnRefreshReuse is the hook of tokens.SessionOptions.OnReuse: a refresh token used again after
// its grace window revoked its whole session, which is worth an alert (RT-04). It counts the
// detection, logs it and records it in the audit log (audit.Log writes reuse at WARN).
func OnRefreshReuse(sink AuditLog, metrics *Metrics) func(context.Context, tokens.Session) {
	return reuseHook(sink, metrics, "reuse_after_grace")
}

// OnRefreshReplay is the hook of tokens.SessionOptions.OnReplay: a used refresh token presented
// again after its session ended (by an earlier reuse, a logout, an administrator). Each replay is
// one more detection, counted and recorded like the reuse that ended the session (SECURITY.md F3).
func OnRefreshReplay(sink AuditLog, metrics *Metrics) func(context.Context, tokens.Session) {
	return reuseHook(sink, metrics, "session_ended")
}

func reuseHook(sink AuditLog, metrics *Metrics, reason string) func(context.Context, tokens.Session) {
	return func(ctx context.Context, s tokens.Session) {
		metrics.RefreshReuse()
		if sink == nil {
			return
		}
		sink.Enqueue(ctx, audit.Event{Type: audit.RefreshReuseDetected, Outcome: audit.OutcomeDenied, ActorID: s.UserID,
			ClientID: s.ClientID, OrgID: s.Org, SubjectID: s.UserID, Details: map[string]string{"family": s.ID, "reason": reason}})
	}
}
