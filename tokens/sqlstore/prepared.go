package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"

	"github.com/uptrace/bun"

	"github.com/portaria/portaria/internal/sqldb"
)

// statements runs fixed queries as prepared statements, each prepared once: SQLite spends about
// as long parsing a small statement as running it, and a login or a refresh runs several. The
// database/sql statement prepares itself again on each new connection. Queries are written with
// ? placeholders, numbered for PostgreSQL. Should a preparation fail, the query runs as bun runs
// it, which reports the error the database gives.
type statements struct {
	db       *sqldb.DB
	prepared sync.Map // query → *sql.Stmt
}

func (p *statements) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.db.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (p *statements) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.db.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (p *statements) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// in runs the statements in tx, each as the transaction's own (database/sql prepares it on the
// transaction's connection if it was not prepared there). Only statements prepared before the
// transaction began are used: preparing one now would need a second connection from the pool
// while tx holds one, and transactions that all wait for one would wait for ever. The others
// run as bun runs them.
func (p *statements) in(tx bun.Tx) txStatements { return txStatements{p: p, tx: tx} }

// prepare prepares queries ahead of a transaction that runs them (in). A failure is left to the
// transaction, which then runs the query unprepared.
func (p *statements) prepare(ctx context.Context, queries ...string) {
	for _, q := range queries {
		p.stmt(ctx, q)
	}
}

// txStatements are statements within a transaction.
type txStatements struct {
	p  *statements
	tx bun.Tx
}

func (t txStatements) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st, ok := t.p.prepared.Load(query); ok {
		return t.tx.Tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txStatements) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st, ok := t.p.prepared.Load(query); ok {
		return t.tx.Tx.StmtContext(ctx, st.(*sql.Stmt)).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// stmt returns the prepared statement of query, preparing it the first time. Of callers racing
// to prepare one query, all but one close theirs.
func (p *statements) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := p.prepared.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	text := query
	if p.db.Dialect == sqldb.Postgres {
		text = numberPlaceholders(query)
	}
	st, err := p.db.DB.DB.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	if prev, loaded := p.prepared.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// numberPlaceholders turns each ? of query into $1, $2, …, PostgreSQL's placeholders. The
// queries given to statements have no ? anywhere else.
func numberPlaceholders(query string) string {
	var b strings.Builder
	n := 0
	for part := range strings.SplitSeq(query, "?") {
		if n > 0 {
			b.WriteString("$" + strconv.Itoa(n))
		}
		b.WriteString(part)
		n++
	}
	return b.String()
}
