package openloop

import (
	"strconv"
	"time"

	"github.com/railco/relay/bench/internal/stats"
)

// Report is one run's figures: sends matched to their deliveries.
type Report struct {
	Sent     int            `json:"sent"`
	Accepted int            `json:"accepted"`
	Errors   int            `json:"errors"`
	ErrorsBy map[string]int `json:"errors_by,omitempty"`
	// Accept is time from the scheduled send to the 202; Delivered from the
	// scheduled send to the backend's first receipt. Both only for requests
	// scheduled after the warm-up.
	Accept    stats.Latency `json:"accept_ms"`
	Delivered stats.Latency `json:"accepted_to_delivered_ms"`
	// Lost: answered 202, never delivered. Unaccepted: delivered without a
	// 202 (an error answer for a message that was stored after all).
	Lost       int     `json:"lost"`
	Unaccepted int     `json:"delivered_not_accepted"`
	MaxLagMS   float64 `json:"max_send_lag_ms"`
}

// Match summarises res against the arrivals a Recorder saw. Requests
// scheduled before start+warmup count as sent, accepted, lost or not, but
// not in the latency figures.
func Match(res *Result, arrivals map[string]time.Time, warmup time.Duration) Report {
	rep := Report{Sent: len(res.Sends), ErrorsBy: map[string]int{}, MaxLagMS: float64(res.MaxLag) / 1e6}
	from := res.Start.Add(warmup)
	var accept, delivered []time.Duration
	for _, s := range res.Sends {
		at, arrived := arrivals[s.ID]
		measured := !s.Scheduled.Before(from)
		if !s.Accepted() {
			rep.Errors++
			key := s.Err
			if s.Status != 0 {
				key = strconv.Itoa(s.Status) + " " + s.Err
			}
			rep.ErrorsBy[key]++
			if arrived {
				rep.Unaccepted++
			}
			continue
		}
		rep.Accepted++
		if measured {
			accept = append(accept, s.Done.Sub(s.Scheduled))
		}
		if !arrived {
			rep.Lost++
			continue
		}
		if measured {
			delivered = append(delivered, at.Sub(s.Scheduled))
		}
	}
	rep.Accept, rep.Delivered = stats.Summarise(accept), stats.Summarise(delivered)
	if len(rep.ErrorsBy) == 0 {
		rep.ErrorsBy = nil
	}
	return rep
}
