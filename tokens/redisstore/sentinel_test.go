package redisstore_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
)

// TestSentinel runs the token store through Sentinel (a master, a replica, three Sentinels, all
// real redis-server processes), reached with the Sentinel form of PORTARIA_REDIS_URL: the
// conformance suite, the concurrent-refresh check (F1, RT-03), then a failover.
func TestSentinel(t *testing.T) {
	group := testenv.StartRedisSentinel(t)
	client := newClient(t, group.URL())
	t.Run("conformance", func(t *testing.T) { runConformance(t, client, "conformance:") })
	t.Run("concurrent refreshes of one token", func(t *testing.T) { runConcurrentRefresh(t, client, "refresh:") })
	t.Run("session lifecycle", func(t *testing.T) { runSessionLifecycle(t, client, "lifecycle:") })
	t.Run("the client follows a failover to the promoted replica", func(t *testing.T) {
		followsFailover(t, group, client)
	})
}

// followsFailover writes a key, has the Sentinels promote the replica, and measures how long the
// store stays unwritable. While it is, every write must fail with ErrUnavailable (a 503), never
// with another error; after it, the key written before is still there.
func followsFailover(t *testing.T, group *testenv.RedisSentinel, client redis.UniversalClient) {
	ctx := t.Context()
	store := redisstore.New(client, "failover:")
	if err := store.Put(ctx, "before", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: wait until the replica has the key, so that the check below
	// is about the client, not about writes lost in flight (docs/deploy.md discusses those).
	master := redis.NewClient(&redis.Options{Addr: group.Master.Addr()})
	defer master.Close()
	if n, err := master.Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: (%d, %v)", n, err)
	}
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: group.Sentinels[0].Addr()})
	defer sentinel.Close()
	began := time.Now()
	if err := sentinel.Failover(ctx, group.MasterName).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	waitPromoted(t, sentinel, group)
	writable := writeUntilAccepted(t, store)
	t.Logf("failover: the store accepted writes again %.2f s after SENTINEL FAILOVER", writable.Sub(began).Seconds())
	if got, err := store.Get(ctx, "before"); err != nil || string(got) != "v" {
		t.Errorf("the key written before the failover: (%q, %v)", got, err)
	}
}

// waitPromoted waits until the Sentinels name the replica as the master.
func waitPromoted(t *testing.T, sentinel *redis.SentinelClient, group *testenv.RedisSentinel) {
	t.Helper()
	want := strconv.Itoa(group.Replica.Port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, err := sentinel.GetMasterAddrByName(t.Context(), group.MasterName).Result()
		if err == nil && len(addr) == 2 && addr[1] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica was not promoted: master is %v (%v)", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeUntilAccepted writes until the store accepts a write and returns when it did. Every
// refused write must be ErrUnavailable: a token request meanwhile gets 503, not 500.
func writeUntilAccepted(t *testing.T, store *redisstore.Store) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := store.Set(ctx, "after", []byte(strconv.Itoa(i)), time.Minute)
		cancel()
		if err == nil {
			return time.Now()
		}
		if !errors.Is(err, tokens.ErrUnavailable) {
			t.Fatalf("write during the failover: %v, want ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted 30 s after the failover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
