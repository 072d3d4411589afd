package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// bufferedLog batches log writes: one write system call per request (the access log) costs the
// token endpoint as much as everything it does besides signing. Lines reach the underlying writer
// within flushEvery, when the buffer fills, and at Close; a crash loses at most that interval.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedLog(w io.Writer, flushEvery time.Duration) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.flush()
			case <-b.stop:
				b.flush()
				return
			}
		}
	}()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufferedLog) flush() {
	b.mu.Lock()
	b.w.Flush()
	b.mu.Unlock()
}

// Close flushes what is buffered and stops the flusher.
func (b *bufferedLog) Close() {
	close(b.stop)
	<-b.done
}
