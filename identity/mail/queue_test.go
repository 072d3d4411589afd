package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// senderFunc adapts a function to Sender.
type senderFunc func(ctx context.Context, m Message) error

func (f senderFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// logBuffer collects log output for assertions while workers write to it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// secretMessage carries a token in its bodies, which must never reach a log.
func secretMessage(i int) Message {
	return Message{
		To:      fmt.Sprintf("user%d@example.com", i),
		Subject: fmt.Sprintf("Reset %d", i),
		Text:    "https://auth.example.com/reset?token=SECRET-TOKEN",
		HTML:    `<a href="https://auth.example.com/reset?token=SECRET-TOKEN">reset</a>`,
	}
}

func runQueue(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueueRetriesAFailingSenderUntilItSucceeds(t *testing.T) {
	var calls atomic.Int32
	sent := make(chan Message, 1)
	sender := senderFunc(func(_ context.Context, m Message) error {
		if calls.Add(1) < 3 {
			return errors.New("connection refused")
		}
		sent <- m
		return nil
	})
	var logs logBuffer
	q := NewQueue(sender, QueueOptions{Backoff: time.Millisecond, Logger: logs.logger()})
	runQueue(t, q)

	if err := q.Enqueue(secretMessage(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sent:
		if m != secretMessage(1) {
			t.Errorf("sent %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message never sent")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("sender called %d times, want 3", n)
	}
	if strings.Contains(logs.String(), "SECRET-TOKEN") {
		t.Errorf("log holds the body:\n%s", logs.String())
	}
}

func TestQueueGivesUpAfterTheLastRetryAndLogsTheMessageLost(t *testing.T) {
	var calls atomic.Int32
	sender := senderFunc(func(context.Context, Message) error {
		calls.Add(1)
		return errors.New("451 try again later")
	})
	var logs logBuffer
	q := NewQueue(sender, QueueOptions{Retries: 3, Backoff: time.Millisecond, Logger: logs.logger()})
	runQueue(t, q)

	if err := q.Enqueue(secretMessage(7)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lost log line", func() bool { return strings.Contains(logs.String(), "mail lost") })

	if n := calls.Load(); n != 4 {
		t.Errorf("sender called %d times, want 1 + 3 retries", n)
	}
	out := logs.String()
	for _, want := range []string{"user7@example.com", "Reset 7", "attempts=4"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRET-TOKEN") {
		t.Errorf("log holds the body:\n%s", out)
	}
}

func TestQueueDoesNotRetryPermanentFailures(t *testing.T) {
	var calls atomic.Int32
	sender := senderFunc(func(context.Context, Message) error {
		calls.Add(1)
		return fmt.Errorf("550 no such user (%w)", ErrPermanent)
	})
	var logs logBuffer
	q := NewQueue(sender, QueueOptions{Backoff: time.Millisecond, Logger: logs.logger()})
	runQueue(t, q)

	if err := q.Enqueue(secretMessage(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lost log line", func() bool { return strings.Contains(logs.String(), "mail lost") })
	if n := calls.Load(); n != 1 {
		t.Errorf("sender called %d times, want 1", n)
	}
}

func TestQueueEnqueueOnAFullQueueFailsAtOnceAndLogs(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	blocked := senderFunc(func(ctx context.Context, _ Message) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	var logs logBuffer
	q := NewQueue(blocked, QueueOptions{Size: 2, Workers: 1, Logger: logs.logger()})
	runQueue(t, q)

	// One message in the stalled worker, two in the queue, the rest refused without waiting.
	var full int
	for i := range 10 {
		start := time.Now()
		err := q.Enqueue(secretMessage(i))
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Fatalf("Enqueue blocked for %v", d)
		}
		switch {
		case errors.Is(err, ErrQueueFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, "the worker to take the first message", func() bool { return len(q.ch) == 0 })
		}
	}
	if full != 7 {
		t.Errorf("%d messages refused, want 7", full)
	}
	out := logs.String()
	if !strings.Contains(out, "queue full") || !strings.Contains(out, "user9@example.com") || !strings.Contains(out, "Reset 9") {
		t.Errorf("log does not name the refused message:\n%s", out)
	}
	if strings.Contains(out, "SECRET-TOKEN") {
		t.Errorf("log holds the body:\n%s", out)
	}
}

func TestQueueEnqueueRefusesHeaderInjection(t *testing.T) {
	q := NewQueue(senderFunc(func(context.Context, Message) error { return nil }), QueueOptions{})
	err := q.Enqueue(Message{To: "a@example.com\r\nBcc: eve@example.com", Subject: "x", Text: "x"})
	if !errors.Is(err, ErrHeaderInjection) {
		t.Fatalf("Enqueue = %v, want ErrHeaderInjection", err)
	}
}

func TestQueueCloseDrainsTheQueue(t *testing.T) {
	for _, withRun := range []bool{false, true} {
		t.Run(fmt.Sprintf("workers running %v", withRun), func(t *testing.T) {
			var mu sync.Mutex
			var sent []string
			sender := senderFunc(func(_ context.Context, m Message) error {
				time.Sleep(time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				sent = append(sent, m.To)
				return nil
			})
			var logs logBuffer
			q := NewQueue(sender, QueueOptions{Logger: logs.logger()})
			if withRun {
				runQueue(t, q)
			}
			for i := range 20 {
				if err := q.Enqueue(secretMessage(i)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := q.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mu.Lock()
			n := len(sent)
			mu.Unlock()
			if n != 20 {
				t.Errorf("%d messages sent, want 20", n)
			}
			if err := q.Enqueue(secretMessage(99)); !errors.Is(err, ErrQueueClosed) {
				t.Errorf("Enqueue after Close = %v, want ErrQueueClosed", err)
			}
		})
	}
}

func TestQueueCloseLogsWhatItCouldNotSendBeforeTheDeadline(t *testing.T) {
	for _, withRun := range []bool{false, true} {
		t.Run(fmt.Sprintf("workers running %v", withRun), func(t *testing.T) {
			stalled := senderFunc(func(ctx context.Context, _ Message) error {
				<-ctx.Done()
				return ctx.Err()
			})
			var logs logBuffer
			q := NewQueue(stalled, QueueOptions{Workers: 1, Logger: logs.logger()})
			if withRun {
				runQueue(t, q)
			}
			for i := range 3 {
				if err := q.Enqueue(secretMessage(i)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := q.Close(ctx); err == nil {
				t.Fatal("Close reported success although nothing was sent")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Close took %v with a 100ms deadline", d)
			}
			waitFor(t, "every message logged unsent", func() bool { return strings.Count(logs.String(), "mail unsent") == 3 })
			out := logs.String()
			for i := range 3 {
				if !strings.Contains(out, fmt.Sprintf("user%d@example.com", i)) {
					t.Errorf("log does not name user%d:\n%s", i, out)
				}
			}
			if strings.Contains(out, "SECRET-TOKEN") {
				t.Errorf("log holds the body:\n%s", out)
			}
		})
	}
}

func TestQueueBackoffDoublesWithJitterUpToAMinute(t *testing.T) {
	q := NewQueue(senderFunc(func(context.Context, Message) error { return nil }), QueueOptions{})
	for _, tc := range []struct {
		attempt int
		max     time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{6, 32 * time.Second},
		{7, time.Minute},
		{30, time.Minute},
	} {
		for range 100 {
			if d := q.backoff(tc.attempt); d < tc.max/2 || d > tc.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.max/2, tc.max)
			}
		}
	}
}
