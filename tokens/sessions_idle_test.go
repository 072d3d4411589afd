package tokens_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
	tokensql "github.com/portaria/portaria/tokens/sqlstore"
)

// RT-05: with an idle timeout, a refresh token unused for longer than it ends the session, each
// rotation starts the idle time again, and the absolute lifetime still ends the family.
func TestIdleTimeoutEndsUnusedSessions(t *testing.T) {
	ctx := context.Background()
	db := openTSDB(t)
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	sessions := tokens.NewSessions(tokensql.New(db, clock), tokens.SessionOptions{
		Grace: 5 * time.Second, SuccessorKey: make([]byte, 32), Log: tokensql.NewRevocationLog(db, clock),
		IdleTimeout: 8 * time.Hour, Now: clock,
	})
	start := func() string {
		rt, _, err := sessions.Start(ctx, tokens.Session{UserID: "u1", ClientID: "c1"}, 7*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}

	var err error
	rt := start()
	for day := range 6 { // used every 7 h: alive until the absolute end
		now = now.Add(7 * time.Hour)
		if rt, _, err = sessions.Refresh(ctx, rt, "c1"); err != nil {
			t.Fatalf("refresh %d after 7 h idle: %v", day, err)
		}
	}
	now = now.Add(8*time.Hour + time.Second)
	if _, _, err := sessions.Refresh(ctx, rt, "c1"); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Errorf("after 8 h 1 s idle: %v, want ErrInvalidGrant", err)
	}

	rt = start()
	for range 24 { // every 7 h for a week: the absolute lifetime (7 days) ends it
		now = now.Add(7 * time.Hour)
		rt, _, err = sessions.Refresh(ctx, rt, "c1")
		if err != nil {
			break
		}
	}
	if !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Errorf("rotation past the absolute lifetime: %v, want ErrInvalidGrant", err)
	}
}
