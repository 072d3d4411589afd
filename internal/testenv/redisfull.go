package testenv

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fill makes the process full the way a production Redis fills up: it sets the noeviction
// policy docs/deploy.md requires and a maxmemory a little above what the server uses, and
// writes filler keys (outside any test's prefix) until Redis refuses one with OOM. Redis counts
// its clients' buffers as used memory, so a connection closing would make room again: the limit
// then goes a margin below what is used, and the server stays full until Unfill. It returns how
// many filler keys it wrote.
func (p *RedisProcess) Fill() int {
	p.t.Helper()
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	const room, slack, size = 2 << 20, 512 << 10, 4 << 10
	setLimit := func(over int) {
		p.t.Helper()
		for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", strconv.Itoa(p.usedMemory(ctx, c) + over)}} {
			if err := c.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
				p.t.Fatalf("redis CONFIG SET %s: %v", kv[0], err)
			}
		}
	}
	setLimit(room)
	filler := strings.Repeat("x", size)
	for n := 0; n < 4*room/size; n++ {
		err := c.Set(ctx, "filler:"+strconv.Itoa(n), filler, 0).Err()
		if redis.IsOOMError(err) {
			setLimit(-slack)
			return n
		}
		if err != nil {
			p.t.Fatalf("fill redis: %v", err)
		}
	}
	p.t.Fatalf("redis not full after %d bytes over its maxmemory", 4*room)
	return 0
}

// usedMemory returns INFO's used_memory.
func (p *RedisProcess) usedMemory(ctx context.Context, c *redis.Client) int {
	p.t.Helper()
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		p.t.Fatalf("redis INFO memory: %v", err)
	}
	used := infoField(info, "used_memory")
	if used <= 0 {
		p.t.Fatalf("no used_memory in INFO memory:\n%s", info)
	}
	return used
}

// Unfill lifts the memory limit Fill set (maxmemory 0: none); the filler stays.
func (p *RedisProcess) Unfill() {
	p.t.Helper()
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		p.t.Fatalf("redis CONFIG SET maxmemory 0: %v", err)
	}
}

func (p *RedisProcess) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.Addr(), DialTimeout: time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1})
}

// infoField returns the integer value of field in an INFO reply, or -1.
func infoField(info, field string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.Atoi(v)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
