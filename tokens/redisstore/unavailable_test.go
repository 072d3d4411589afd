package redisstore_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
)

// TestAFullRedisRefusesWritesAsUnavailable: Redis at maxmemory under noeviction (the policy
// docs/deploy.md requires) refuses every command that needs memory with OOM. The store must
// report that as ErrUnavailable, so that a token request answers 503 with Retry-After instead of
// 500, and nothing is issued whose state was not written. Reads and deletes still work (a full
// Redis still revokes), and the rotation script, which deletes the token before it writes, runs
// whole or not at all.
func TestAFullRedisRefusesWritesAsUnavailable(t *testing.T) {
	proc := testenv.StartRedis(t)
	client := newClient(t, proc.URL())
	store := redisstore.New(client, "full:")
	ctx := t.Context()
	const family, token = "fam:{f}", "rt:{f}:a"
	for key, value := range map[string]string{family: "family", token: "record", "gone": "x", "taken": "y", "other": "z"} {
		if err := store.Put(ctx, key, []byte(value), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	filled := proc.Fill()

	writes := map[string]func() error{
		"Put": func() error { return store.Put(ctx, "put", []byte("v"), time.Minute) },
		"Set": func() error { return store.Set(ctx, "set", []byte("v"), time.Minute) },
		"SetMany": func() error {
			return store.SetMany(ctx, []tokens.Entry{{Key: "a", Value: []byte("1"), TTL: time.Minute}, {Key: "b", Value: []byte("2"), TTL: time.Minute}})
		},
		"Incr": func() error { _, err := store.Incr(ctx, "counter", time.Minute); return err },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, tokens.ErrUnavailable) {
			t.Errorf("%s on a full Redis: %v, want ErrUnavailable", name, err)
		}
	}
	if _, err := store.Get(ctx, family); err != nil {
		t.Errorf("Get on a full Redis: %v", err)
	}
	if _, err := store.GetMany(ctx, family, token); err != nil {
		t.Errorf("GetMany on a full Redis: %v", err)
	}
	if _, err := store.Take(ctx, "taken"); err != nil {
		t.Errorf("Take on a full Redis: %v", err)
	}
	if deleted, err := store.Delete(ctx, "gone"); err != nil || !deleted {
		t.Errorf("Delete on a full Redis: %v, %v", deleted, err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("Ping on a full Redis: %v", err)
	}

	sw := tokens.Swap{Key: token, Want: []byte("record"), Guard: family,
		Writes: []tokens.Entry{{Key: "rt:{f}:b", Value: []byte("next"), TTL: time.Minute}, {Key: "used:{f}:a", Value: []byte("1"), TTL: time.Minute}},
		Reads:  []string{"other"}}
	res, err := store.Swap(ctx, sw)
	left, _ := store.GetMany(ctx, token, "rt:{f}:b", "used:{f}:a")
	switch {
	case err == nil && res.Done && left[0] == nil && left[1] != nil && left[2] != nil:
		t.Logf("swap on a full Redis: done whole (Redis lets a script that has deleted finish its writes)")
	case errors.Is(err, tokens.ErrUnavailable) && left[0] != nil && left[1] == nil && left[2] == nil:
		t.Logf("swap on a full Redis: refused, nothing changed")
	default:
		t.Errorf("swap on a full Redis: %+v, %v; token, successor, tombstone after it: %q", res, err, left)
	}

	proc.Unfill()
	for name, write := range writes {
		if err := write(); err != nil {
			t.Errorf("%s once maxmemory is lifted: %v", name, err)
		}
	}
	t.Logf("Redis full after %d filler keys; every write needing memory refused as unavailable, reads and deletes served", filled)
}

// TestRepliesOfARedisThatCannotServeAreUnavailable: the error replies of a server that is up but
// cannot serve now (loading, a replica after a failover, out of memory, short of replicas, unable
// to persist, busy with a script, a Cluster without quorum or resharding) make every operation
// fail with ErrUnavailable (503), while a reply that means a bug does not.
func TestRepliesOfARedisThatCannotServeAreUnavailable(t *testing.T) {
	replies := []string{
		"OOM command not allowed when used memory > 'maxmemory'.",
		"OOM command not allowed when used memory > 'maxmemory'. script: 219bb33e7c6773035c720850383aa2ebb63d9904, on @user_script:1.",
		"LOADING Redis is loading the dataset in memory",
		"READONLY You can't write against a read only replica.",
		"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
		"NOREPLICAS Not enough good replicas to write.",
		"MISCONF Errors writing to the AOF file: No space left on device",
		"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
		"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
		"TRYAGAIN Multiple keys request during rehashing of slot",
		"CLUSTERDOWN The cluster is down",
		"ERR max number of clients reached",
	}
	for _, reply := range replies {
		t.Run(reply, func(t *testing.T) {
			for op, err := range everyOperation(t, newClient(t, replyServer(t, reply))) {
				if !errors.Is(err, tokens.ErrUnavailable) {
					t.Errorf("%s: %v, want ErrUnavailable", op, err)
				}
			}
		})
	}
	t.Run("a reply that means a bug is not unavailable", func(t *testing.T) {
		for op, err := range everyOperation(t, newClient(t, replyServer(t, "WRONGTYPE Operation against a key holding the wrong kind of value"))) {
			if err == nil || errors.Is(err, tokens.ErrUnavailable) {
				t.Errorf("%s: %v, want an error other than ErrUnavailable", op, err)
			}
		}
	})
}

// everyOperation runs each Store operation once and returns its error.
func everyOperation(t *testing.T, client redis.UniversalClient) map[string]error {
	ctx := t.Context()
	s := redisstore.New(client, "replies:")
	errs := map[string]error{}
	errs["Put"] = s.Put(ctx, "k", []byte("v"), time.Minute)
	errs["Set"] = s.Set(ctx, "k", []byte("v"), time.Minute)
	_, errs["Get"] = s.Get(ctx, "k")
	_, errs["GetMany"] = s.GetMany(ctx, "k", "l")
	errs["SetMany"] = s.SetMany(ctx, []tokens.Entry{{Key: "k", Value: []byte("v"), TTL: time.Minute}})
	_, errs["Take"] = s.Take(ctx, "k")
	_, errs["Delete"] = s.Delete(ctx, "k")
	_, errs["Incr"] = s.Incr(ctx, "n", time.Minute)
	_, errs["Swap"] = s.Swap(ctx, tokens.Swap{Key: "rt:{f}:a", Want: []byte("x"), Guard: "fam:{f}",
		Writes: []tokens.Entry{{Key: "rt:{f}:b", Value: []byte("y"), TTL: time.Minute}}, Reads: []string{"nb:{u}"}})
	errs["Ping"] = s.Ping(ctx)
	return errs
}

// replyServer is a stand-in for Redis that answers every command with the error reply, once a
// client has connected as to an old server (HELLO unknown, so RESP2). It returns its URL.
func replyServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go answerEvery(conn, reply)
		}
	}()
	return "redis://" + ln.Addr().String() + "/0"
}

func answerEvery(conn net.Conn, reply string) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		name, err := readCommand(r)
		if err != nil {
			return
		}
		answer := "-" + reply + "\r\n"
		switch strings.ToUpper(name) {
		case "HELLO":
			answer = "-ERR unknown command 'HELLO'\r\n"
		case "CLIENT":
			answer = "+OK\r\n"
		}
		if _, err := io.WriteString(conn, answer); err != nil {
			return
		}
	}
}

// readCommand reads one command (a RESP array of bulk strings) and returns its name.
func readCommand(r *bufio.Reader) (string, error) {
	n, err := readLength(r, '*')
	if err != nil {
		return "", err
	}
	var name string
	for i := range n {
		size, err := readLength(r, '$')
		if err != nil {
			return "", err
		}
		arg := make([]byte, size+2)
		if _, err := io.ReadFull(r, arg); err != nil {
			return "", err
		}
		if i == 0 {
			name = string(arg[:size])
		}
	}
	return name, nil
}

func readLength(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 3 || line[0] != kind {
		return 0, errors.New("not a RESP command")
	}
	return strconv.Atoi(strings.TrimSpace(line[1:]))
}
