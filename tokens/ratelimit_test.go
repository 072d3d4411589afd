package tokens_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
	tokensql "github.com/portaria/portaria/tokens/sqlstore"
)

func TestRateLimitCountsPerKeyAndWindow(t *testing.T) {
	ctx := context.Background()
	db := openTSDB(t)
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	rl := tokens.NewRateLimit(tokensql.New(db, clock), clock)

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ok, _, err := rl.Hit(ctx, "forgot", "ana@acme.test", 5, 15*time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 5 {
		t.Errorf("%d of 20 concurrent events allowed, want 5", allowed.Load())
	}
	ok, retry, _ := rl.Hit(ctx, "forgot", "ana@acme.test", 5, 15*time.Minute)
	if ok || retry != 15*time.Minute {
		t.Errorf("over the limit: ok %v retry %s", ok, retry)
	}
	if ok, _, _ := rl.Hit(ctx, "forgot", "bia@acme.test", 5, 15*time.Minute); !ok {
		t.Error("another key has its own count")
	}
	now = now.Add(15 * time.Minute)
	if ok, _, _ := rl.Hit(ctx, "forgot", "ana@acme.test", 5, 15*time.Minute); !ok {
		t.Error("a new window starts a new count")
	}
}
