package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// ThrottleOptions configures a Throttle. A zero or negative field takes its default.
type ThrottleOptions struct {
	// AccountFailures is how many consecutive attempts an account may make before it is locked
	// (default 5).
	AccountFailures int
	// BaseCooldown is the first lock (default 30 s); each further lock doubles it, up to
	// MaxCooldown (default 15 min).
	BaseCooldown time.Duration
	MaxCooldown  time.Duration
	// FailureWindow is how long an account's consecutive failures and lock level are remembered,
	// counted from the first of them (default 24 h).
	FailureWindow time.Duration
	// IPFailures failures from one client (default 100) within a window of IPWindow (default
	// 10 min) refuse further attempts from it until the window ends.
	IPFailures int
	IPWindow   time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Throttle limits online guessing of passwords, one-time passwords and recovery codes (SPEC §4
// "Brute force", SECURITY PW-03), per account first and per client IP second, with atomic
// counters in the Store so that every server instance shares them.
//
// The caller asks Allow before it evaluates anything, that is before it looks the user up or
// computes any hash, and reports the outcome afterwards:
//
//	retry, ok, err := throttle.Allow(ctx, email, clientIP)
//	if err != nil { /* 503: fail closed */ }
//	if !ok { /* 429 with Retry-After: retry, the same body for every account */ }
//	// look the user up; verify the password, or a dummy hash when there is no such user
//	if wrong || noSuchUser { throttle.Fail(ctx, email, clientIP); /* 401 */ }
//	throttle.Succeed(ctx, email) // only once the whole login has succeeded
//
// Each OTP or recovery-code attempt is one more Allow with the same account string, so that the
// steps of a login share one count. A correct password that still awaits a second factor is
// neither a failure nor a success: call neither, and Succeed when the second factor is right (so
// a login with a second factor uses two attempts of the count until it succeeds).
//
// The account is whatever the caller normalised (an e-mail address or a user id); the Throttle
// never asks whether it exists. An address without an account is counted and locked exactly like
// one with, and the answers carry nothing but "allowed" or a Retry-After, so a 429 reveals nothing.
//
// Accounts. Allow reserves each attempt atomically before it lets it through, and an attempt
// counts as a failure from that moment until Succeed clears the account; Fail adds nothing to the
// account. Of the first AccountFailures attempts, the last one locks the account for BaseCooldown
// as it is let through, before it is evaluated; while the lock lives every attempt is refused
// unevaluated. The first attempt after a lock expires locks it again, for twice the previous
// cool-down, capped at MaxCooldown: with the defaults, 5 attempts, then one attempt after each of
// 30 s, 1, 2, 4 and 8 min, then one every 15 min. Because the lock is taken when the attempt is
// reserved, not when it fails, the bound holds however many requests race: at most
// AccountFailures attempts are evaluated before the first lock and at most one per lock after
// it, until a Succeed. It also means that an attempt abandoned half-way (a crash, a dropped
// connection) counts as a failure: the Throttle errs on the safe side.
//
// Clients. Fail counts a failure against the client IP, IPv6 addresses by their /64, in fixed
// windows of IPWindow; at IPFailures failures the client is refused until the window ends. A
// success does not reset it. Since this count is taken after the evaluation, requests from one
// client that are in flight together can overshoot IPFailures by their number.
//
// Keys carry the SHA-256 of the account or client address as their hash tag, never the address
// itself: "thr:{h}:att" (attempts), "thr:{h}:lvl" (locks so far), "thr:{h}:lock" (the lock,
// whose value is its end in Unix milliseconds, so that Allow can answer the remaining time on any
// store), "thr:ip:{h}:fail:<window>" and "thr:ip:{h}:lock".
//
// Every store error is returned, and Allow then answers not ok: the caller answers 503 and
// never lets an attempt through that the Throttle could not count.
type Throttle struct {
	store Store
	opts  ThrottleOptions
}

// NewThrottle returns a Throttle on store.
func NewThrottle(store Store, opts ThrottleOptions) *Throttle {
	if opts.AccountFailures <= 0 {
		opts.AccountFailures = 5
	}
	if opts.BaseCooldown <= 0 {
		opts.BaseCooldown = 30 * time.Second
	}
	if opts.MaxCooldown <= 0 {
		opts.MaxCooldown = 15 * time.Minute
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = 24 * time.Hour
	}
	if opts.IPFailures <= 0 {
		opts.IPFailures = 100
	}
	if opts.IPWindow <= 0 {
		opts.IPWindow = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Throttle{store: store, opts: opts}
}

// Allow says whether an attempt for account from ip may be evaluated. When it may not, it returns
// how long the caller should wait (whole seconds, at least one), for the Retry-After header.
// When it may, the attempt is counted against the account until Succeed.
func (t *Throttle) Allow(ctx context.Context, account, ip string) (retryAfter time.Duration, ok bool, err error) {
	acct, client, err := throttleTags(account, ip)
	if err != nil {
		return 0, false, fmt.Errorf("throttle: %w", err)
	}
	now := t.opts.Now()
	keys := []string{clientLockKey(client), accountLockKey(acct)}
	locks, err := t.store.GetMany(ctx, keys...)
	if err != nil {
		return 0, false, fmt.Errorf("throttle: %w", err)
	}
	for i, lock := range locks {
		wait, locked, err := lockWait(lock, now)
		if err != nil {
			return 0, false, fmt.Errorf("throttle: lock %s: %w", keys[i], err)
		}
		if locked {
			return wait, false, nil
		}
	}
	n, err := t.store.Incr(ctx, attemptsKey(acct), t.opts.FailureWindow)
	if err != nil {
		return 0, false, fmt.Errorf("throttle: %w", err)
	}
	if n < int64(t.opts.AccountFailures) {
		return 0, true, nil
	}
	// This is the last attempt before a lock, or the first after one expired: it may be evaluated
	// only by the caller that locks the account. Of racing callers, one creates the lock; the
	// others find it and are refused.
	won, err := t.lockAccount(ctx, acct, now)
	if err != nil {
		return 0, false, fmt.Errorf("throttle: %w", err)
	}
	if won {
		return 0, true, nil
	}
	wait, _, err := t.locked(ctx, accountLockKey(acct), now)
	if err != nil {
		return 0, false, fmt.Errorf("throttle: %w", err)
	}
	// No lock any more means a Succeed removed it just now: the caller may retry in a second.
	return max(wait, time.Second), false, nil
}

// Fail records a failed password, OTP or recovery-code attempt that Allow let through, and an
// attempt for an address without an account alike. The account's attempt was already counted by
// Allow; Fail counts the failure against the client.
func (t *Throttle) Fail(ctx context.Context, account, ip string) error {
	_, client, err := throttleTags(account, ip)
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	now := t.opts.Now()
	window := max(t.opts.IPWindow.Milliseconds(), 1)
	index := now.UnixMilli() / window
	end := time.UnixMilli((index + 1) * window)
	// The counter of a window is keyed by it, so it may outlive the window without harm.
	n, err := t.store.Incr(ctx, clientFailuresKey(client, index), t.opts.IPWindow)
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	if n < int64(t.opts.IPFailures) {
		return nil
	}
	if err := t.store.Set(ctx, clientLockKey(client), lockValue(end), end.Sub(now)); err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}

// Succeed records a successful login of account: its attempts, lock level and any lock are
// cleared. The client's failures stay.
func (t *Throttle) Succeed(ctx context.Context, account string) error {
	if account == "" {
		return errors.New("throttle: empty account")
	}
	acct := throttleTag(account)
	keys := []string{attemptsKey(acct), levelKey(acct), accountLockKey(acct)}
	// Most logins succeed at the first attempt, with no level or lock to clear: one read spares
	// them two deletes, each a write transaction on SQL. A level or lock created after the read
	// stays, which is the stricter outcome; a delete after it would race the same way.
	values, err := t.store.GetMany(ctx, keys...)
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	// The lock goes last: until then a racing attempt still finds the account locked, rather than
	// finding it unlocked with the old count and level.
	for i, key := range keys {
		if values[i] == nil {
			continue
		}
		if _, err := t.store.Delete(ctx, key); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
	}
	return nil
}

// Release gives back the attempt Allow counted against account when the attempt was never
// evaluated (no hashing slot was free: the server, not the caller, refused it). Without it, a
// user retrying through an overload would lock their own account with a correct password. A
// lock that attempt created stays: releasing errs on the safe side only by the count.
func (t *Throttle) Release(ctx context.Context, account string) error {
	if account == "" {
		return errors.New("throttle: empty account")
	}
	if _, err := t.store.Decr(ctx, attemptsKey(throttleTag(account))); err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}

// lockAccount creates the account's next lock and reports whether this caller created it. The
// cool-down depends on how many locks came before, which only the creator may count, so the lock
// is first created for MaxCooldown, the longest it can be, and shortened once its level is known.
// Should the caller fail in between, the longer lock stays: it errs on the safe side.
func (t *Throttle) lockAccount(ctx context.Context, acct string, now time.Time) (bool, error) {
	key := accountLockKey(acct)
	longest := t.opts.MaxCooldown
	if err := t.store.Put(ctx, key, lockValue(now.Add(longest)), longest); err != nil {
		if errors.Is(err, ErrExists) {
			return false, nil
		}
		return false, err
	}
	level, err := t.store.Incr(ctx, levelKey(acct), t.opts.FailureWindow)
	if err != nil {
		return true, err
	}
	if cooldown := t.cooldown(level); cooldown < longest {
		if err := t.store.Set(ctx, key, lockValue(now.Add(cooldown)), cooldown); err != nil {
			return true, err
		}
	}
	return true, nil
}

// cooldown is the length of the level-th lock (from 1): BaseCooldown doubled level-1 times,
// capped at MaxCooldown.
func (t *Throttle) cooldown(level int64) time.Duration {
	d := t.opts.BaseCooldown
	for i := int64(1); i < level && d < t.opts.MaxCooldown; i++ {
		d *= 2
	}
	return min(d, t.opts.MaxCooldown)
}

// locked reports whether the lock under key is live and, if so, how long it has left.
func (t *Throttle) locked(ctx context.Context, key string, now time.Time) (time.Duration, bool, error) {
	value, err := t.store.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	wait, locked, err := lockWait(value, now)
	if err != nil {
		return 0, false, fmt.Errorf("lock %s: %w", key, err)
	}
	return wait, locked, nil
}

// lockWait reports whether a lock as read (nil: none) is live and, if so, how long it has left.
func lockWait(value []byte, now time.Time) (time.Duration, bool, error) {
	if value == nil {
		return 0, false, nil
	}
	ms, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		return 0, false, errors.New("malformed value")
	}
	return retryAfter(time.UnixMilli(ms).Sub(now)), true, nil
}

// retryAfter rounds d up to whole seconds, at least one: Retry-After counts seconds, and a live
// lock whose end has passed on this server's clock (another server set it) is still a lock.
func retryAfter(d time.Duration) time.Duration {
	if d <= time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

func lockValue(end time.Time) []byte { return strconv.AppendInt(nil, end.UnixMilli(), 10) }

// throttleTags returns the hash tags of an account and of a client IP.
func throttleTags(account, ip string) (acct, client string, err error) {
	if account == "" {
		return "", "", errors.New("empty account")
	}
	if ip == "" {
		return "", "", errors.New("empty client IP")
	}
	return throttleTag(account), throttleTag(clientNetwork(ip)), nil
}

// throttleTag is the Redis hash tag that stands for s in keys: its SHA-256, so that neither
// addresses nor e-mails are stored.
func throttleTag(s string) string { return "{" + hashToken(s) + "}" }

// clientNetwork is what a client is counted by: an IPv4 address (also when written IPv4-mapped),
// or the /64 of an IPv6 address, since a subscriber is usually given a whole /64 and can rotate
// through it at will. A value that is not an IP address is counted as it is.
func clientNetwork(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return addr.String()
	}
	prefix, err := addr.Prefix(64)
	if err != nil {
		return ip
	}
	return prefix.String()
}

func attemptsKey(acct string) string    { return "thr:" + acct + ":att" }
func levelKey(acct string) string       { return "thr:" + acct + ":lvl" }
func accountLockKey(acct string) string { return "thr:" + acct + ":lock" }
func clientLockKey(client string) string {
	return "thr:ip:" + client + ":lock"
}
func clientFailuresKey(client string, window int64) string {
	return "thr:ip:" + client + ":fail:" + strconv.FormatInt(window, 10)
}
