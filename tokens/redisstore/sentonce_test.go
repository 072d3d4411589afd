package redisstore_test

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
)

// A command whose reply comes after the read timeout fails with ErrUnavailable within the budget,
// although Redis ran it: the write is there, once. The client is built not to send a command
// again (MaxRetries -1, TestParseSentinelURL checks it): a second SET NX would find its own key
// and answer ErrExists, which a login turned into a 500.
func TestALateReplyIsNotResent(t *testing.T) {
	rawURL, prefix := testenv.RedisURL(t)
	proxy := newSlowProxy(t, rawURL)
	s := redisstore.New(newClient(t, proxy.url), prefix)
	ctx := t.Context()
	if err := s.Put(ctx, "warm", []byte("x"), time.Minute); err != nil { // the connection's handshake, undelayed
		t.Fatal(err)
	}

	proxy.delay.Store(int64(550 * time.Millisecond)) // past the 500 ms read timeout, within the budget
	err := s.Put(ctx, "once", []byte("mine"), time.Minute)
	if !errors.Is(err, tokens.ErrUnavailable) {
		t.Fatalf("Put with a late reply: %v, want ErrUnavailable", err)
	}

	time.Sleep(100 * time.Millisecond) // the late reply drains
	direct := redisstore.New(newClient(t, rawURL), prefix)
	if v, err := direct.Get(ctx, "once"); err != nil || string(v) != "mine" {
		t.Fatalf("the late Put's key: (%q, %v), want it written", v, err)
	}
}

// slowProxy forwards TCP to Redis and holds back the next reply by delay, once.
type slowProxy struct {
	url   string
	delay atomic.Int64 // nanoseconds
}

func newSlowProxy(t *testing.T, rawURL string) *slowProxy {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &slowProxy{}
	to := *u
	to.Host = ln.Addr().String()
	p.url = to.String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", u.Host)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); r.Close() })
			go io.Copy(r, c)
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := r.Read(buf)
					if n > 0 {
						time.Sleep(time.Duration(p.delay.Swap(0)))
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}
