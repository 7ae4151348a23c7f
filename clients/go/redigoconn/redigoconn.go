// Package redigoconn adapts a redigo connection pool to seen.Conn, the interface the
// seen-worker Go client takes.
//
//	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) }}
//	client := seen.NewClient(redigoconn.New(pool), layout)
package redigoconn

import (
	"context"
	"errors"
	"time"

	"github.com/gomodule/redigo/redis"
	seen "seen-worker/clients/go"
)

// New adapts pool: each call takes a connection from it and returns it afterwards.
func New(pool *redis.Pool) seen.Conn { return poolConn{pool} }

type poolConn struct{ pool *redis.Pool }

var _ seen.Conn = poolConn{}

// Do runs one command. redigo's replies are already what seen.Conn asks for: int64, []byte,
// string (status), []interface{}, nil, and redis.Error (an error) for an error reply.
func (p poolConn) Do(ctx context.Context, cmd string, args ...string) (any, error) {
	conn, err := p.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return do(ctx, conn, cmd, asArgs(args)...)
}

// Tx sends MULTI, the commands and EXEC on one pooled connection.
func (p poolConn) Tx(ctx context.Context, cmds [][]string) ([]any, error) {
	conn, err := p.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Send("MULTI"); err != nil {
		return nil, err
	}
	for _, cmd := range cmds {
		if err := conn.Send(cmd[0], asArgs(cmd[1:])...); err != nil {
			return nil, err
		}
	}
	reply, err := do(ctx, conn, "EXEC")
	if err != nil {
		return nil, err
	}
	replies, ok := reply.([]interface{})
	if !ok {
		return nil, errors.New("redigoconn: EXEC returned no array (transaction aborted)")
	}
	return replies, nil
}

// do bounds the reply's wait by ctx's deadline (redigo 1.8 has no context-aware Do).
func do(ctx context.Context, conn redis.Conn, cmd string, args ...interface{}) (interface{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		return redis.DoWithTimeout(conn, time.Until(deadline), cmd, args...)
	}
	return conn.Do(cmd, args...)
}

func asArgs(args []string) []interface{} {
	out := make([]interface{}, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}
