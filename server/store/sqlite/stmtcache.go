package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"modernc.org/sqlite"
)

// maxStmts bounds the statements a connection keeps prepared. The store's
// queries are constants, far fewer than this; a query beyond it is parsed
// at each call, as without the cache.
const maxStmts = 256

// openDB opens a pool of connections to the database named by dsn whose
// connections keep their statements prepared: the driver parses a query at
// every call, which costs more than running most of the store's queries
// (a tenth of a millisecond per overlaps answer). A statement is parsed
// once per connection and reused.
func openDB(dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(stmtConnector{c}), nil
}

// stmtConnector opens stmtConns.
type stmtConnector struct{ driver.Connector }

// Connect implements driver.Connector.
func (c stmtConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(innerConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods", conn)
	}
	return &stmtConn{innerConn: inner, stmts: map[string]*stmt{}}, nil
}

// innerConn is what the driver's connections implement and stmtConn
// passes on: hiding one would make database/sql fall back to the
// context-free methods.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtConn is a driver connection that keeps the statements it ran
// prepared, by query text. Like every driver connection it is used by one
// goroutine at a time.
type stmtConn struct {
	innerConn
	stmts map[string]*stmt
}

// stmt is a kept statement; busy while rows read from it are open, when
// the same query runs as a new statement instead.
type stmt struct {
	keptStmt
	busy bool
}

// keptStmt is what a statement must implement to be kept: the driver's
// all do.
type keptStmt interface {
	driver.Stmt
	driver.StmtQueryContext
	driver.StmtExecContext
}

// prepared returns the kept statement for query, preparing it the first
// time, or nil when it is busy or the connection keeps enough already.
func (c *stmtConn) prepared(ctx context.Context, query string) (*stmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	if len(c.stmts) >= maxStmts {
		return nil, nil
	}
	ds, err := c.innerConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ks, ok := ds.(keptStmt)
	if !ok {
		ds.Close()
		return nil, nil
	}
	s := &stmt{keptStmt: ks}
	c.stmts[query] = s
	return s, nil
}

// QueryContext implements driver.QueryerContext.
func (c *stmtConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.innerConn.QueryContext(ctx, query, args)
	}
	rows, err := s.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &stmtRows{Rows: rows, s: s}, nil
}

// ExecContext implements driver.ExecerContext.
func (c *stmtConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.innerConn.ExecContext(ctx, query, args)
	}
	return s.ExecContext(ctx, args)
}

// Close closes the kept statements and the connection.
func (c *stmtConn) Close() error {
	var errs []error
	for q, s := range c.stmts {
		errs = append(errs, s.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.innerConn.Close())...)
}

// stmtRows are rows read from a kept statement, which they free on Close.
type stmtRows struct {
	driver.Rows
	s *stmt
}

// Close implements driver.Rows.
func (r *stmtRows) Close() error {
	r.s.busy = false
	return r.Rows.Close()
}
