package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/config"
)

func TestLoader(t *testing.T) {
	env := map[string]string{"S": "x", "I": "7", "D": "250ms", "F": "2.5", "B": "true", "L": "500, 422"}
	l := config.NewLoader(func(k string) string { return env[k] })
	if l.String("S", "d") != "x" || l.String("MISSING", "d") != "d" {
		t.Error("String")
	}
	if l.Int("I", 0) != 7 || l.Duration("D", 0) != 250*time.Millisecond || l.Float("F", 0) != 2.5 || !l.Bool("B", false) {
		t.Error("typed values")
	}
	if set := l.IntSet("L", nil); !set[500] || !set[422] || len(set) != 2 {
		t.Errorf("IntSet = %v", set)
	}
	if set := l.IntSet("MISSING", []int{1}); !set[1] || len(set) != 1 {
		t.Errorf("IntSet default = %v", set)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestLoader_ReportsEveryBadValue(t *testing.T) {
	env := map[string]string{"I": "seven", "D": "5", "L": "500,x"}
	l := config.NewLoader(func(k string) string { return env[k] })
	l.Int("I", 1)
	l.Duration("D", 0)
	l.IntSet("L", nil)
	err := l.Err()
	for _, key := range []string{"I=", "D=", "L="} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}

func TestLoader_SwitchTakesOnAndOff(t *testing.T) {
	env := map[string]string{"A": "on", "B": "OFF", "C": "true", "D": "0", "E": "maybe"}
	l := config.NewLoader(func(k string) string { return env[k] })
	if !l.Switch("A", false) || l.Switch("B", true) || !l.Switch("C", false) || l.Switch("D", true) {
		t.Error("Switch misread a value")
	}
	if l.Switch("MISSING", false) || !l.Switch("MISSING", true) {
		t.Error("Switch ignored its default")
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	l.Switch("E", false)
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "E=") {
		t.Errorf("Switch(maybe): error %v", err)
	}
}
