package redisstore_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/internal/testenv"
)

// TestCluster runs the token store on a real three-master Redis Cluster started from
// redis-server processes: the conformance suite, the concurrent-refresh check (F1, RT-03) and
// every multi-key operation of a session's life. Each family's keys carry its sid as a hash tag,
// so the rotation script's keys share one slot; a key of another slot in it would fail here
// with CROSSSLOT.
func TestCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	client := newClient(t, cluster.Addrs())
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("a list of addresses gave %T, want *redis.ClusterClient", client)
	}
	t.Run("conformance", func(t *testing.T) { runConformance(t, client, "conformance:") })
	t.Run("concurrent refreshes of one token", func(t *testing.T) { runConcurrentRefresh(t, client, "refresh:") })
	t.Run("session lifecycle", func(t *testing.T) { runSessionLifecycle(t, client, "lifecycle:") })
	// The checks above prove something about a Cluster only if their keys were spread over it.
	t.Run("keys were spread over every master", func(t *testing.T) {
		var holding atomic.Int64
		err := client.(*redis.ClusterClient).ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
			if n, err := node.DBSize(ctx).Result(); err != nil || n == 0 {
				return err
			}
			holding.Add(1)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := holding.Load(); n != int64(len(cluster.Nodes)) {
			t.Errorf("%d of %d masters hold keys", n, len(cluster.Nodes))
		}
	})
}
