package main

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/tokens/redisstore"
)

// deleteRedisPrefix deletes every key that starts with prefix, on each primary of a Cluster.
func deleteRedisPrefix(ctx context.Context, rawURL, prefix string) error {
	client, err := redisstore.NewClient(rawURL)
	if err != nil {
		return err
	}
	defer client.Close()
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		batch := make([]string, 0, 500)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			// One key per command: in a Cluster the keys of one node still span many slots.
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range batch {
					p.Unlink(ctx, k)
				}
				return nil
			})
			batch = batch[:0]
			return err
		}
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	switch c := client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, del)
	case *redis.Client:
		return del(ctx, c)
	default:
		return fmt.Errorf("unexpected Redis client %T", client)
	}
}
