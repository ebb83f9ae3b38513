package providers

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// configReader reads a model's JSON config (numbers arrive as float64) and
// collects every problem as an error naming the key, so one answer lists
// all that is wrong.
type configReader struct {
	raw  map[string]any
	errs []error
}

func (c *configReader) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *configReader) err() error { return errors.Join(c.errs...) }

func (c *configReader) has(key string) bool {
	v, ok := c.raw[key]
	return ok && v != nil
}

// str reads an optional string.
func (c *configReader) str(key string) string {
	if !c.has(key) {
		return ""
	}
	s, ok := c.raw[key].(string)
	if !ok {
		c.fail("config.%s must be a string, got %T", key, c.raw[key])
	}
	return s
}

// required reads a string that must be present and not blank.
func (c *configReader) required(key string) string {
	s := c.str(key)
	if strings.TrimSpace(s) == "" && (!c.has(key) || isString(c.raw[key])) {
		c.fail("config.%s is required", key)
	}
	return s
}

func isString(v any) bool { _, ok := v.(string); return ok }

// integer reads an optional whole number within [lo, hi]; 0 when absent.
func (c *configReader) integer(key string, lo, hi int) int {
	if !c.has(key) {
		return 0
	}
	f, ok := toFloat(c.raw[key])
	if !ok || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		c.fail("config.%s must be a whole number between %d and %d, got %v", key, lo, hi, c.raw[key])
		return 0
	}
	return int(f)
}

// number reads an optional number within [lo, hi]; nil when absent.
func (c *configReader) number(key string, lo, hi float64) *float64 {
	if !c.has(key) {
		return nil
	}
	f, ok := toFloat(c.raw[key])
	if !ok || f < lo || f > hi {
		c.fail("config.%s must be a number between %g and %g, got %v", key, lo, hi, c.raw[key])
		return nil
	}
	return &f
}

// seconds reads an optional duration in seconds (timeout_seconds).
func (c *configReader) seconds(key string, hi int) time.Duration {
	f := c.number(key, 0, float64(hi))
	if f == nil {
		return 0
	}
	if *f <= 0 {
		c.fail("config.%s must be positive, got %v", key, *f)
		return 0
	}
	return time.Duration(*f * float64(time.Second))
}

// httpURL reads an optional http(s) URL.
func (c *configReader) httpURL(key string) string {
	s := c.str(key)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not echoed: it may carry credentials.
		c.fail("config.%s must be an http(s) URL with a host", key)
		return s
	}
	if err := Outbound().CheckURL(u); err != nil {
		c.fail("config.%s: %v", key, err)
	}
	return s
}

// headers reads an optional object of string header values.
func (c *configReader) headers(key string) map[string]string {
	if !c.has(key) {
		return nil
	}
	raw, ok := c.raw[key].(map[string]any)
	if !ok {
		c.fail("config.%s must be an object of header names to string values", key)
		return nil
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		s, ok := v.(string)
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(s, "\r\n") {
			// The value is not echoed: header values are often credentials.
			c.fail("config.%s.%s must be a valid header name with a single-line string value", key, k)
			continue
		}
		out[k] = s
	}
	return out
}
