package metrics

import (
	"errors"
	"time"

	"github.com/railco/relay/pkg/config"
)

// Config holds the metric settings both services read.
type Config struct {
	// QueueInterval is how often Queues polls the broker; 0 turns queue
	// metrics off for this service (QUEUE_METRICS_INTERVAL).
	QueueInterval time.Duration
}

// DefaultQueueInterval is QUEUE_METRICS_INTERVAL's default: below a typical
// scrape interval (15s), far above what costs the broker anything.
const DefaultQueueInterval = 10 * time.Second

// LoadConfig reads the metric settings.
func LoadConfig(l *config.Loader) Config {
	return Config{QueueInterval: l.Duration("QUEUE_METRICS_INTERVAL", DefaultQueueInterval)}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.QueueInterval != 0 && c.QueueInterval < time.Second {
		return errors.New("QUEUE_METRICS_INTERVAL must be 0 (off) or at least 1s")
	}
	return nil
}
