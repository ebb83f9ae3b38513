package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// stream is a GraphQL websocket connection (graphql-transport-ws) carrying
// subscriptions. Messages of every subscription arrive on one channel, in
// the order the server sent them.
type stream struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	msgs chan streamMsg
	done chan struct{}
}

// streamMsg is one message of a subscription: data, errors, or its end.
type streamMsg struct {
	ID       string
	Data     json.RawMessage
	Errors   []struct{ Message string }
	Complete bool
	// Err ends the whole connection.
	Err error
}

// dialStream connects and authenticates.
func dialStream(ctx context.Context, c *client) (*stream, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 15 * time.Second}
	h := http.Header{}
	if c.apiKey != "" {
		h.Set("Authorization", "Bearer "+c.apiKey)
	}
	conn, resp, err := d.DialContext(ctx, c.wsURL(), h)
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return nil, fail(ExitRefused, "open %s: %s", c.wsURL(), resp.Status)
		}
		return nil, fail(ExitUnavailable, "open %s: %v", c.wsURL(), err)
	}
	s := &stream{conn: conn, msgs: make(chan streamMsg, 64), done: make(chan struct{})}
	init := map[string]any{"type": "connection_init"}
	if c.apiKey != "" {
		init["payload"] = map[string]any{"authToken": c.apiKey}
	}
	if err := s.write(init); err != nil {
		conn.Close()
		return nil, fail(ExitUnavailable, "websocket: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var ack struct{ Type string }
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		conn.Close()
		if ce := new(websocket.CloseError); errors.As(err, &ce) && ce.Code == 4403 {
			return nil, fail(ExitRefused, "websocket refused the API key: %s", ce.Text)
		}
		return nil, fail(ExitUnavailable, "websocket: no connection_ack (%v)", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go s.read()
	return s, nil
}

func (s *stream) write(v any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteJSON(v)
}

// subscribe starts a subscription under id.
func (s *stream) subscribe(id, query string, vars map[string]any) error {
	return s.write(map[string]any{"id": id, "type": "subscribe",
		"payload": map[string]any{"query": query, "variables": vars}})
}

func (s *stream) read() {
	defer close(s.msgs)
	for {
		var m struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := s.conn.ReadJSON(&m); err != nil {
			select {
			case <-s.done:
			default:
				s.msgs <- streamMsg{Err: fmt.Errorf("websocket: %w", err)}
			}
			return
		}
		var out streamMsg
		switch m.Type {
		case "ping":
			_ = s.write(map[string]string{"type": "pong"})
			continue
		case "next":
			var p struct {
				Data   json.RawMessage `json:"data"`
				Errors []struct{ Message string }
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				out.Err = fmt.Errorf("websocket: bad message: %w", err)
			}
			out.Data, out.Errors = p.Data, p.Errors
		case "error":
			if err := json.Unmarshal(m.Payload, &out.Errors); err != nil {
				out.Err = fmt.Errorf("websocket: bad error message: %w", err)
			}
			out.Complete = true
		case "complete":
			out.Complete = true
		default:
			continue
		}
		out.ID = m.ID
		select {
		case s.msgs <- out:
		case <-s.done:
			return
		}
	}
}

// close ends the connection.
func (s *stream) close() {
	select {
	case <-s.done:
		return
	default:
		close(s.done)
	}
	s.wmu.Lock()
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.wmu.Unlock()
	_ = s.conn.Close()
}
