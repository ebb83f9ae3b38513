package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/openai/openai-go/v3/option"
)

// errorAnswer classifies an HTTP error answer by its status, whatever its
// body says, with the body's message (see ParseErrorBody). A 404 or 405
// also names the URL asked: it most often means a base_url without (or
// with one too many) "/v1".
func errorAnswer(req *http.Request, res *http.Response, raw []byte) *Error {
	b := ParseErrorBody(raw)
	msg := b.text()
	if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
		msg = fmt.Sprintf("%s (%s %s)", msg, req.Method, shownURL(req.URL))
	}
	if msg == "" {
		msg = http.StatusText(res.StatusCode)
	}
	e := HTTPError(res.StatusCode, res.Header, msg)
	if IsContextLength(b.Code) {
		e.Kind, e.RetryAfter = KindPermanent, 0
	}
	return e
}

// shownURL is a request URL fit for an error message: no user info, no
// query (either may hold a credential).
func shownURL(u *url.URL) string {
	cp := *u
	cp.User, cp.RawQuery, cp.Fragment = nil, "", ""
	return cp.String()
}

// apiMediaTypes are the answers an OpenAI-compatible server gives. An
// answer without a Content-Type is read as JSON (and fails as such if it
// is not).
var apiMediaTypes = map[string]bool{
	"application/json": true, "text/event-stream": true, "application/x-ndjson": true,
	"application/jsonl": true, "text/plain": true, "": true,
}

// notAnAPI is a 200 answer that no OpenAI-compatible server gives: a web
// page (a base_url pointing at a site, a login portal, a proxy's error
// page). Sending the request again cannot help.
func notAnAPI(req *http.Request, res *http.Response) error {
	ct := res.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		mt, err = "", nil
	}
	if err == nil && (apiMediaTypes[mt] || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return Permanent(fmt.Errorf("expected an OpenAI-compatible JSON or event-stream answer from %s, got %s", shownURL(req.URL), ct))
}

// streamEnd records whether an event stream sent its closing "data: [DONE]".
type streamEnd struct{ done atomic.Bool }

type streamEndKey struct{}

// withStreamEnd returns a context under which answerCheck records the end
// of a streamed answer in the returned streamEnd.
func withStreamEnd(ctx context.Context) (context.Context, *streamEnd) {
	se := &streamEnd{}
	return context.WithValue(ctx, streamEndKey{}, se), se
}

// answerCheck is the SDK middleware that reads every answer before the SDK
// does: an error status becomes a classified *Error whatever the body's
// shape (the SDK only understands OpenAI's own and reports any other as a
// decoding error); a 200 that is not JSON or an event stream fails at once;
// an event stream is watched for its [DONE].
func answerCheck(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if err != nil {
		return res, err
	}
	if res.StatusCode >= 400 {
		raw, rerr := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		if rerr != nil && len(raw) == 0 {
			return nil, transportError(req.Context(), fmt.Errorf("read the HTTP %d answer: %w", res.StatusCode, rerr), "")
		}
		return nil, errorAnswer(req, res, raw)
	}
	if err := notAnAPI(req, res); err != nil {
		res.Body.Close()
		return nil, err
	}
	if se, ok := req.Context().Value(streamEndKey{}).(*streamEnd); ok {
		res.Body = &doneWatcher{ReadCloser: res.Body, end: se}
	}
	return res, nil
}

// doneWatcher passes an event stream through and notes a "data: [DONE]"
// line. tail keeps the end of the previous read, so a marker split across
// two reads is still seen.
type doneWatcher struct {
	io.ReadCloser
	end  *streamEnd
	tail []byte
}

var doneMarker = []byte("[DONE]")

func (d *doneWatcher) Read(p []byte) (int, error) {
	n, err := d.ReadCloser.Read(p)
	if n > 0 && !d.end.done.Load() {
		d.tail = append(d.tail, p[:n]...)
		if doneLine(d.tail) {
			d.end.done.Store(true)
		}
		keep := min(len(d.tail), 16)
		d.tail = append(d.tail[:0], d.tail[len(d.tail)-keep:]...)
	}
	return n, err
}

// doneLine reports whether buf holds a line "data: [DONE]" (or
// "data:[DONE]").
func doneLine(buf []byte) bool {
	for i := bytes.Index(buf, doneMarker); i >= 0; {
		before := bytes.TrimRight(buf[:i], " ")
		if bytes.HasSuffix(before, []byte("data:")) {
			start := len(before) - len("data:")
			if start == 0 || buf[start-1] == '\n' || buf[start-1] == '\r' {
				return true
			}
		}
		j := bytes.Index(buf[i+1:], doneMarker)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// streamErrorEvent classifies an error event inside a 200 stream
// (`data: {"error": {...}}`) like an HTTP error, by its code or type.
func streamErrorEvent(data []byte, partial string) *Error {
	b := ParseErrorBody(data)
	msg := b.text()
	if msg == "" {
		msg = "an error event without a message"
	}
	return &Error{Kind: b.Kind(), Partial: partial, Err: errors.New("the server sent an error in the stream: " + msg)}
}
