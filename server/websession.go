package server

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/apikey"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// A websocket authenticates once, in connection_init, and may stay open
// for days. Its key keeps being checked: every operation it starts looks
// the key up again (as every HTTP request does), and a watcher looks up
// the keys of all open connections every websocketKeyRecheck, so that a
// subscription that sends no new operation stops too. A revoked or
// deleted key closes its connections with 4403 and the reason. The check
// reads the database, so a key revoked by another process (the CLI, another
// api process) is seen as well.

// websocketKeyRecheck is how often the watcher looks up the keys of open
// websockets (one query per process, whatever the number of connections).
const websocketKeyRecheck = 2 * time.Second

// closeKeyRevoked is the close code of a connection whose key stopped
// working (graphql-transport-ws uses 4403 for "forbidden").
const closeKeyRevoked = 4403

const reasonKeyRevoked = "the API key was revoked"

// wsSession links a websocket's upgrade request to its connection, so that
// connection_init (which sees only the request's context) can tell the
// connection which key it authenticated with.
type wsSession struct{ conn *gorillaConn }

type wsSessionKey struct{}

// bindKey records the key a connection authenticated with.
func (sess *wsSession) bindKey(keyID int) {
	if sess == nil || sess.conn == nil {
		return
	}
	sess.conn.mu.Lock()
	sess.conn.keyID = keyID
	sess.conn.mu.Unlock()
}

// keyOf returns the key a connection authenticated with (0: none).
func (g *gorillaConn) keyOf() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.keyID
}

// liveKeys returns which of ids name keys that exist and are not revoked.
func liveKeys(ctx context.Context, db *ent.Client, ids []int) (map[int]bool, error) {
	live, err := db.APIKey.Query().Where(apikey.IDIn(ids...), apikey.RevokedAtIsNil()).IDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int]bool, len(live))
	for _, id := range live {
		out[id] = true
	}
	return out, nil
}

// watchKeys closes, every interval, the websockets whose key was revoked
// or deleted, until stop is closed.
func (s *Server) watchKeys(ws *gorillaWebsocket, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.closeRevoked(ws)
	}
}

// closeRevoked runs one round of the watcher.
func (s *Server) closeRevoked(ws *gorillaWebsocket) {
	ws.mu.Lock()
	byKey := map[int][]*gorillaConn{}
	for c := range ws.conns {
		if id := c.keyOf(); id != 0 {
			byKey[id] = append(byKey[id], c)
		}
	}
	ws.mu.Unlock()
	if len(byKey) == 0 {
		return
	}
	ids := make([]int, 0, len(byKey))
	for id := range byKey {
		ids = append(ids, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), websocketKeyRecheck)
	defer cancel()
	live, err := liveKeys(ctx, s.app.Store.Client, ids)
	if err != nil {
		// The next round tries again; operations still check their key.
		s.log.Warn("check the keys of open websockets", "err", err)
		return
	}
	for id, conns := range byKey {
		if live[id] {
			continue
		}
		s.log.Info("closing websockets of a revoked API key", "key_id", id, "connections", len(conns))
		for _, c := range conns {
			c.closeWith(closeKeyRevoked, reasonKeyRevoked)
		}
	}
}

// recheckWebsocketKey is a GraphQL operation middleware: an operation sent
// on a websocket looks its key up again first. A revoked key gets
// UNAUTHENTICATED and its connection is closed with 4403.
func (s *Server) recheckWebsocketKey(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	sess, _ := ctx.Value(wsSessionKey{}).(*wsSession)
	if sess == nil || sess.conn == nil {
		return next(ctx)
	}
	id := sess.conn.keyOf()
	if id == 0 {
		return next(ctx)
	}
	live, err := liveKeys(ctx, s.app.Store.Client, []int{id})
	var gerr *gqlerror.Error
	switch {
	case err != nil:
		gerr = &gqlerror.Error{Message: "the API key could not be checked: the database is unavailable",
			Extensions: map[string]any{"code": string(scheduler.CodeUnavailable)}}
	case !live[id]:
		gerr = &gqlerror.Error{Message: reasonKeyRevoked,
			Extensions: map[string]any{"code": string(scheduler.CodeUnauthenticated)}}
		defer sess.conn.closeWith(closeKeyRevoked, reasonKeyRevoked)
	default:
		return next(ctx)
	}
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{gerr}})
}
