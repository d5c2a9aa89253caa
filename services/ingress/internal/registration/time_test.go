package registration

import (
	"testing"
	"time"
)

// TestValidTime_AgreesWithTimeParse checks validTime against time.Parse for
// TimeLayout: everything validTime accepts, time.Parse accepts as the same
// wall time, and everything time.Parse rejects, validTime rejects. (time.Parse
// also takes a one-digit hour, which validTime does not.)
func TestValidTime_AgreesWithTimeParse(t *testing.T) {
	var inputs []string
	for _, date := range []string{"2021-07-16", "2020-02-29", "2021-02-29", "1900-02-29", "2000-02-29", "2021-04-31", "2021-12-31", "2021-00-10", "2021-13-10", "2021-01-00", "0000-01-01", "9999-12-31", "2021-1-16", "21-07-16"} {
		for _, clock := range []string{"00:00", "11:45", "23:59", "24:00", "12:60", "1:45", "01:5", "11:45:00"} {
			inputs = append(inputs, date+" "+clock, date+"T"+clock)
		}
	}
	inputs = append(inputs, "", "2021-07-16", "2021-07-16 11:4x", "２０２１-07-16 11:45", "+021-07-16 11:45", "-021-07-16 11:45")
	for _, s := range inputs {
		t.Run(s, func(t *testing.T) {
			got := validTime([]byte(s))
			parsed, err := time.Parse(TimeLayout, s)
			if got && err != nil {
				t.Fatalf("validTime accepts %q, time.Parse rejects it: %v", s, err)
			}
			if got && parsed.Format(TimeLayout) != s {
				t.Fatalf("validTime accepts %q, time.Parse reads it as %s", s, parsed.Format(TimeLayout))
			}
			if !got && err == nil && parsed.Format(TimeLayout) == s {
				t.Fatalf("validTime rejects %q, which is in canonical form", s)
			}
		})
	}
}

// TestTimeOrder_MatchesInstants checks that comparing the text of two valid
// times orders them like the instants they name.
func TestTimeOrder_MatchesInstants(t *testing.T) {
	times := []string{"2021-07-16 11:45", "2021-07-16 16:40", "2021-07-17 00:00", "2020-12-31 23:59", "2021-07-16 11:46", "0999-01-01 00:00", "2021-10-01 09:00"}
	for _, a := range times {
		for _, b := range times {
			ta, _ := time.Parse(TimeLayout, a)
			tb, _ := time.Parse(TimeLayout, b)
			if (a < b) != ta.Before(tb) {
				t.Errorf("%s < %s is %v as text but %v as instants", a, b, a < b, ta.Before(tb))
			}
		}
	}
}
