package sqldb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

// A connection that breaks under a query means the database is unavailable (503), never a 500.
func TestTranslateBrokenConnectionsAreUnavailable(t *testing.T) {
	for _, err := range []error{
		io.ErrUnexpectedEOF, io.EOF, net.ErrClosed, syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EPIPE,
		fmt.Errorf("read: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}),
	} {
		if got := Translate(fmt.Errorf("query: %w", err)); !errors.Is(got, ErrUnavailable) {
			t.Errorf("%v: got %v, want ErrUnavailable", err, got)
		}
	}
	if got := Translate(errors.New("syntax error")); errors.Is(got, ErrUnavailable) {
		t.Errorf("an ordinary error became unavailable: %v", got)
	}
}
