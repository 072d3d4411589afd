package redisstore_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
	"github.com/portaria/portaria/tokens/tokenstest"
)

// TestRedis runs the conformance suite, then checks that it left no key without a TTL
// (SECURITY.md RT-05: every token key expires).
func TestRedis(t *testing.T) {
	rawURL, prefix := testenv.RedisURL(t)
	client := newClient(t, rawURL)
	var n atomic.Int64
	tokenstest.Run(t, func(t *testing.T) tokens.Store {
		// One prefix per subtest: each starts with an empty store.
		return redisstore.New(client, fmt.Sprintf("%s%d:", prefix, n.Add(1)))
	})

	t.Run("no key is left without a ttl", func(t *testing.T) {
		ctx := t.Context()
		keys := 0
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys++
			ttl, err := client.PTTL(ctx, iter.Val()).Result()
			if err != nil {
				t.Fatal(err)
			}
			// -2 (already gone) is fine; -1 would be a key that never expires.
			if ttl == -1 {
				t.Errorf("key %q has no TTL", iter.Val())
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			t.Fatal("the suite left no key to check")
		}
	})
}

func TestUnreachableRedisIsUnavailable(t *testing.T) {
	// Nothing listens on port 1, so the dial is refused at once.
	s := redisstore.New(newClient(t, "redis://127.0.0.1:1/0"), "test:")
	if err := s.Ping(t.Context()); !errors.Is(err, tokens.ErrUnavailable) {
		t.Errorf("Ping: got %v, want ErrUnavailable", err)
	}
	start := time.Now()
	if _, err := s.Take(t.Context(), "k"); !errors.Is(err, tokens.ErrUnavailable) {
		t.Errorf("Take: got %v, want ErrUnavailable", err)
	}
	// Failing closed must be fast too: a refused connection is not worth waiting on.
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("Take took %v to fail", elapsed)
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		name    string
		rawURL  string
		wantErr bool
	}{
		{"a redis URL is accepted", "redis://:s3cret@localhost:6379/2", false},
		{"a rediss URL is accepted", "rediss://user:s3cret@localhost:6380", false},
		{"a bare address is accepted", "localhost:6379", false},
		{"a list of addresses is a cluster", "10.0.0.1:7000, 10.0.0.2:7000,10.0.0.3:7000", false},
		{"a list of URLs is a cluster", "redis://:s3cret@10.0.0.1:7000,redis://:s3cret@10.0.0.2:7000", false},
		{"an unknown scheme is refused", "http://:s3cret@localhost:6379", true},
		{"a bad port is refused", "redis://:s3cret@localhost:port/0", true},
		{"a bad database number is refused", "redis://:s3cret@localhost:6379/s3cret", true},
		{"an empty entry in a list is refused", "redis://:s3cret@10.0.0.1:7000,,10.0.0.2:7000", true},
		{"URLs that disagree on the password are refused", "redis://:s3cret@10.0.0.1:7000,redis://:other@10.0.0.2:7000", true},
		{"a cluster with a database number is refused", "redis://:s3cret@10.0.0.1:7000/1,redis://:s3cret@10.0.0.2:7000/1", true},
		{"an empty URL is refused", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := redisstore.NewClient(tt.rawURL)
			if tt.wantErr {
				if err == nil {
					client.Close()
					t.Fatal("got no error")
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error echoes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			client.Close()
		})
	}
}

func TestNewClientChoosesClusterForAList(t *testing.T) {
	client, err := redisstore.NewClient("10.0.0.1:7000,10.0.0.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("got %T, want *redis.ClusterClient", client)
	}
}

func newClient(t *testing.T, rawURL string) redis.UniversalClient {
	t.Helper()
	client, err := redisstore.NewClient(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
