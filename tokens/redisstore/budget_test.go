package redisstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
)

// TestAHungRedisFailsWithinTheBudget: against a Redis that accepts connections but answers
// nothing (SIGSTOP), every operation fails with ErrUnavailable within a second (RL-01: a token
// request fails within a second; the client's budget per command is 600 ms), even when many
// requests at once need new connections whose handshakes hang too. Without the budget such an
// operation took about 1.1 s.
func TestAHungRedisFailsWithinTheBudget(t *testing.T) {
	proc := testenv.StartRedis(t)
	store := redisstore.New(newClient(t, proc.URL()), "budget:")
	if err := store.Put(t.Context(), "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	proc.Pause()
	defer proc.Resume()
	const callers = 30
	took := make([]time.Duration, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			began := time.Now()
			if i%2 == 0 {
				_, errs[i] = store.Get(t.Context(), "k")
			} else {
				_, errs[i] = store.Swap(t.Context(), tokens.Swap{Key: "rt:{f}:a", Want: []byte("x"), Guard: "fam:{f}",
					Writes: []tokens.Entry{{Key: "rt:{f}:b", Value: []byte("y"), TTL: time.Minute}}, Reads: []string{"nb:{u}"}})
			}
			took[i] = time.Since(began)
		})
	}
	wg.Wait()
	for i := range callers {
		if !errors.Is(errs[i], tokens.ErrUnavailable) {
			t.Errorf("caller %d: %v, want ErrUnavailable", i, errs[i])
		}
		if took[i] > time.Second {
			t.Errorf("caller %d failed after %v, want within 1 s", i, took[i])
		}
	}
}
