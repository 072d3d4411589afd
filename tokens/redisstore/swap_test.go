package redisstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
)

// Concurrent swaps share pipelines; each caller still gets the answer of its own swap.
func TestConcurrentSwapsGetTheirOwnAnswers(t *testing.T) {
	rawURL, prefix := testenv.RedisURL(t)
	s := redisstore.New(newClient(t, rawURL), prefix)
	ctx := t.Context()
	const families = 200
	for i := range families {
		mustSet(t, s, fmt.Sprintf("fam:{%d}", i), fmt.Sprintf("family %d", i))
		mustSet(t, s, fmt.Sprintf("rt:{%d}:old", i), fmt.Sprintf("t2:client %d", i))
		mustSet(t, s, fmt.Sprintf("nb:{user %d}", i), fmt.Sprintf("mark %d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, families)
	for i := range families {
		wg.Go(func() {
			got, err := s.Swap(ctx, tokens.Swap{
				Key: fmt.Sprintf("rt:{%d}:old", i), Want: []byte(fmt.Sprintf("t2:client %d", i)), Guard: fmt.Sprintf("fam:{%d}", i),
				Writes: []tokens.Entry{{Key: fmt.Sprintf("rt:{%d}:new", i), Value: []byte(fmt.Sprint(i)), TTL: time.Minute}},
				Reads:  []string{fmt.Sprintf("nb:{user %d}", i)},
			})
			switch {
			case err != nil:
				errs[i] = err
			case !got.Done || string(got.Guard) != fmt.Sprintf("family %d", i) || len(got.Reads) != 1 || string(got.Reads[0]) != fmt.Sprintf("mark %d", i):
				errs[i] = fmt.Errorf("got %+v", got)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("swap %d: %v", i, err)
		}
	}
}

// A Redis whose script cache was flushed (a restart, a failover to a new node) still swaps.
func TestSwapSurvivesAFlushedScriptCache(t *testing.T) {
	rawURL, prefix := testenv.RedisURL(t)
	client := newClient(t, rawURL)
	s := redisstore.New(client, prefix)
	for round := range 2 {
		key := fmt.Sprintf("rt:{f}:%d", round)
		mustSet(t, s, "fam:{f}", "family")
		mustSet(t, s, key, "t2:web")
		if err := client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := s.Swap(t.Context(), tokens.Swap{Key: key, Want: []byte("t2:web"), Guard: "fam:{f}"})
		if err != nil || !got.Done {
			t.Fatalf("round %d: Swap after SCRIPT FLUSH: got (%+v, %v), want it done", round, got, err)
		}
	}
}

func mustSet(t *testing.T, s tokens.Store, key, value string) {
	t.Helper()
	if err := s.Set(t.Context(), key, []byte(value), time.Minute); err != nil {
		t.Fatal(err)
	}
}
