// Package config reads typed settings from the environment.
//
// A Loader collects every problem instead of stopping at the first, so a
// service started with three bad variables reports all three at once:
//
//	l := config.NewLoader(os.Getenv)
//	addr := l.String("INGRESS_ADDR", ":8290")
//	timeout := l.Duration("PUBLISH_TIMEOUT", 5*time.Second)
//	if err := l.Err(); err != nil { ... }
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Getenv looks a variable up; os.Getenv satisfies it, and tests pass a map's lookup.
type Getenv func(key string) string

// Loader reads variables through a Getenv and remembers every parse error.
type Loader struct {
	getenv Getenv
	errs   []error
}

// NewLoader returns a Loader reading through getenv.
func NewLoader(getenv Getenv) *Loader { return &Loader{getenv: getenv} }

// Err returns all parse errors joined, or nil.
func (l *Loader) Err() error { return errors.Join(l.errs...) }

func (l *Loader) lookup(key string) (string, bool) {
	v := strings.TrimSpace(l.getenv(key))
	return v, v != ""
}

func (l *Loader) fail(key, raw string, err error) {
	l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", key, raw, err))
}

// String returns the variable, or def when it is unset or blank.
func (l *Loader) String(key, def string) string {
	if v, ok := l.lookup(key); ok {
		return v
	}
	return def
}

// Int returns the variable parsed as a base-10 integer, or def.
func (l *Loader) Int(key string, def int) int {
	raw, ok := l.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		l.fail(key, raw, errors.New("not an integer"))
		return def
	}
	return n
}

// Float returns the variable parsed as a float, or def.
func (l *Loader) Float(key string, def float64) float64 {
	raw, ok := l.lookup(key)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		l.fail(key, raw, errors.New("not a number"))
		return def
	}
	return f
}

// Duration returns the variable parsed by time.ParseDuration ("1s", "250ms"), or def.
func (l *Loader) Duration(key string, def time.Duration) time.Duration {
	raw, ok := l.lookup(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		l.fail(key, raw, errors.New(`not a duration (use e.g. "500ms", "5s", "10m")`))
		return def
	}
	return d
}

// Bool returns the variable parsed by strconv.ParseBool, or def.
func (l *Loader) Bool(key string, def bool) bool {
	raw, ok := l.lookup(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		l.fail(key, raw, errors.New("not a boolean"))
		return def
	}
	return b
}

// Switch returns the variable as on (true) or off (false), or def: "on",
// "off" and whatever strconv.ParseBool takes ("true", "1", "false", "0", ...),
// in any case.
func (l *Loader) Switch(key string, def bool) bool {
	raw, ok := l.lookup(key)
	if !ok {
		return def
	}
	switch strings.ToLower(raw) {
	case "on":
		return true
	case "off":
		return false
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		l.fail(key, raw, errors.New("want on or off"))
		return def
	}
	return b
}

// IntSet returns the variable parsed as a comma-separated list of integers, or def.
func (l *Loader) IntSet(key string, def []int) map[int]bool {
	raw, ok := l.lookup(key)
	list := def
	if ok {
		list = nil
		for _, field := range strings.Split(raw, ",") {
			field = strings.TrimSpace(field)
			if field == "" {
				continue
			}
			n, err := strconv.Atoi(field)
			if err != nil {
				l.fail(key, raw, fmt.Errorf("%q is not an integer", field))
				return nil
			}
			list = append(list, n)
		}
	}
	set := make(map[int]bool, len(list))
	for _, n := range list {
		set[n] = true
	}
	return set
}
