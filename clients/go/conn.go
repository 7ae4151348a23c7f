package seen

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Conn is all the client needs from a Redis connection, pool or cluster client.
//
// Replies are plain Go values: nil for a nil reply, int64 for an integer, string or []byte
// for a bulk or status reply, float64 for a RESP3 double, []any for an array. An error reply is returned as an error
// whose text is the server's own ("NOSCRIPT No matching script ..."); the client recognises
// NOSCRIPT by that prefix and falls back to EVAL.
type Conn interface {
	// Do runs one command.
	Do(ctx context.Context, cmd string, args ...string) (any, error)
	// Tx runs cmds (each a command name followed by its arguments) in one MULTI/EXEC on
	// one connection and returns EXEC's replies in order, with an error value in place of
	// a command that failed inside the transaction. The error result is for the
	// transaction as a whole (connection lost, EXECABORT).
	Tx(ctx context.Context, cmds [][]string) ([]any, error)
}

func replyInt(reply any) (int64, error) {
	switch v := reply.(type) {
	case int64:
		return v, nil
	case int:
		return int64(v), nil
	case string:
		return strconv.ParseInt(v, 10, 64)
	case []byte:
		return strconv.ParseInt(string(v), 10, 64)
	case error:
		return 0, v
	}
	return 0, fmt.Errorf("seen: expected an integer reply, got %T", reply)
}

// replyString is a bulk or status reply as a string; ok is false for a nil reply.
func replyString(reply any) (s string, ok bool, err error) {
	switch v := reply.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case []byte:
		return string(v), true, nil
	case float64: // a RESP3 double (go-redis v9 speaks RESP3): ZSCORE
		return strconv.FormatFloat(v, 'f', -1, 64), true, nil
	case error:
		return "", false, v
	}
	return "", false, fmt.Errorf("seen: expected a string reply, got %T", reply)
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
