package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/tokens"
)

// swapScript is Store.Swap in one atomic step. KEYS: the key, the guard, then the keys written;
// ARGV: the wanted value, then the value and TTL (ms) of each write. It returns the value found,
// the guard's value and 1 if the swap was done.
var swapScript = redis.NewScript(`
local guard = redis.call('GET', KEYS[2])
local value = redis.call('GET', KEYS[1])
if not guard or value ~= ARGV[1] then
	return {value, guard, 0}
end
local left = redis.call('PTTL', KEYS[2])
redis.call('DEL', KEYS[1])
for i = 3, #KEYS do
	local ttl = tonumber(ARGV[2 * i - 3])
	if left > 0 and left < ttl then
		ttl = left
	end
	redis.call('SET', KEYS[i], ARGV[2 * i - 4], 'PX', ttl)
end
return {value, guard, 1}
`)

// Swap runs swapScript (EVALSHA) and the GETs of sw.Reads in one pipeline, the script on the node
// of the family's slot and each GET on the node of its own; the swaps of concurrent callers share
// the pipeline (swapBatch).
func (s *Store) Swap(ctx context.Context, sw tokens.Swap) (tokens.Swapped, error) {
	call := &swapCall{
		keys: make([]string, 0, 2+len(sw.Writes)), args: make([]any, 0, 1+2*len(sw.Writes)),
		deadline: time.Now().Add(opBudget), done: make(chan struct{}),
	}
	call.keys = append(call.keys, s.prefix+sw.Key, s.prefix+sw.Guard)
	call.args = append(call.args, sw.Want)
	for _, e := range sw.Writes {
		if err := checkTTL(e.TTL); err != nil {
			return tokens.Swapped{}, err
		}
		call.keys = append(call.keys, s.prefix+e.Key)
		call.args = append(call.args, e.Value, int64((e.TTL+time.Millisecond-1)/time.Millisecond))
	}
	for _, key := range sw.Reads {
		call.reads = append(call.reads, s.prefix+key)
	}
	if s.swaps.add(call) {
		s.sendSwaps(context.WithoutCancel(ctx), s.swaps.next())
	}
	select {
	case <-call.done:
		return call.out, call.err
	case <-ctx.Done():
		// The swap may still happen: as after any error, the caller cannot know.
		return tokens.Swapped{}, fail("swap", ctx.Err())
	}
}

// swapCall is one Swap waiting in a batch.
type swapCall struct {
	keys  []string
	args  []any
	reads []string
	// deadline is the client's budget counted from the call, not from its batch: time spent
	// waiting for a batch in flight counts, so that a call fails within the budget even behind a
	// hung Redis. (The caller's own deadline only ends its wait, never the batch of others.)
	deadline time.Time
	done     chan struct{} // closed once out and err are set
	out      tokens.Swapped
	err      error
}

// swapBatch coalesces the swaps of concurrent callers. Under load many token requests wait on
// Redis at once, and every pipeline costs a write and a read system call, and a connection
// check, however many commands it carries: those were most of a refresh's cost in Redis. The
// caller that finds no batch in flight sends its swap at once, with any queued meanwhile;
// callers that arrive while a batch is in flight queue up and go together in the next one. The
// swaps stay independent: each is its own atomic script, and its own errors are its own.
type swapBatch struct {
	mu      sync.Mutex
	queued  []*swapCall
	sending bool
}

// add queues call and reports whether the caller must send the batch: no batch was in flight.
func (b *swapBatch) add(call *swapCall) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queued = append(b.queued, call)
	if b.sending {
		return false
	}
	b.sending = true
	return true
}

// next takes the queued swaps; when there are none, no batch is in flight any more.
func (b *swapBatch) next() []*swapCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	calls := b.queued
	b.queued = nil
	b.sending = len(calls) > 0
	return calls
}

// sendSwaps sends calls, then hands what queued meanwhile to a goroutine of its own, so that the
// caller that sent gets its answer without waiting for later batches. ctx is not cancelled with
// any one caller; the pipeline ends at the earliest deadline of its calls.
func (s *Store) sendSwaps(ctx context.Context, calls []*swapCall) {
	deadline := calls[0].deadline
	for _, c := range calls[1:] {
		if c.deadline.Before(deadline) {
			deadline = c.deadline
		}
	}
	batchCtx, cancel := context.WithDeadline(ctx, deadline)
	s.pipelineSwaps(batchCtx, calls, false)
	cancel()
	if more := s.swaps.next(); len(more) > 0 {
		go s.sendSwaps(ctx, more)
	}
}

// pipelineSwaps runs calls in one pipeline and answers each. The scripts are sent by their SHA,
// or whole when Redis no longer knows it (its script cache was flushed, or the node is new): a
// script refused so did not run, and is sent again.
func (s *Store) pipelineSwaps(ctx context.Context, calls []*swapCall, whole bool) {
	pipe := s.client.Pipeline()
	scripts := make([]*redis.Cmd, len(calls))
	reads := make([][]*redis.StringCmd, len(calls))
	for i, c := range calls {
		if whole {
			scripts[i] = swapScript.Eval(ctx, pipe, c.keys, c.args...)
		} else {
			scripts[i] = swapScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		reads[i] = make([]*redis.StringCmd, len(c.reads))
		for j, key := range c.reads {
			reads[i][j] = pipe.Get(ctx, key)
		}
	}
	pipe.Exec(ctx) // every command carries its own error
	var unknown []*swapCall
	for i, c := range calls {
		if !whole && redis.HasErrorPrefix(scripts[i].Err(), "NOSCRIPT") {
			unknown = append(unknown, c)
			continue
		}
		c.out, c.err = swapAnswer(scripts[i], reads[i])
		close(c.done)
	}
	if len(unknown) > 0 {
		s.pipelineSwaps(ctx, unknown, true)
	}
}

// swapAnswer decodes the replies of one swap.
func swapAnswer(script *redis.Cmd, reads []*redis.StringCmd) (tokens.Swapped, error) {
	out, err := swapResult(script)
	if err != nil {
		return tokens.Swapped{}, fail("swap", err)
	}
	if out.Reads, err = readValues(reads); err != nil {
		return tokens.Swapped{}, fail("swap", err)
	}
	return out, nil
}

// swapResult decodes the reply of swapScript.
func swapResult(script *redis.Cmd) (tokens.Swapped, error) {
	reply, err := script.Slice()
	if err != nil {
		return tokens.Swapped{}, err
	}
	if len(reply) != 3 {
		return tokens.Swapped{}, fmt.Errorf("unexpected reply of %d values", len(reply))
	}
	done, _ := reply[2].(int64)
	return tokens.Swapped{Done: done == 1, Value: replyBytes(reply[0]), Guard: replyBytes(reply[1])}, nil
}

// replyBytes is a bulk string of a script's reply as a value; nil (a missing key) stays nil.
func replyBytes(v any) []byte {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	return []byte(s)
}
