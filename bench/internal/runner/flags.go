package runner

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func dur(fs *flag.FlagSet, p *Duration, name string, def time.Duration, usage string) {
	*p = Duration(def)
	fs.DurationVar((*time.Duration)(p), name, def, usage)
}

// intList is a comma-separated flag value.
type intList struct{ p *[]int }

func (l intList) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, v := range *l.p {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l intList) Set(v string) error {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	*l.p = out
	return nil
}

func ints(fs *flag.FlagSet, p *[]int, name string, def []int, usage string) {
	*p = def
	fs.Var(intList{p}, name, usage)
}

// envList is a repeatable KEY=VALUE flag.
type envList map[string]string

func (e *envList) String() string {
	if e == nil {
		return ""
	}
	s := make([]string, 0, len(*e))
	for k, v := range *e {
		s = append(s, k+"="+v)
	}
	return strings.Join(s, " ")
}

func (e *envList) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	if *e == nil {
		*e = envList{}
	}
	(*e)[k] = val
	return nil
}
