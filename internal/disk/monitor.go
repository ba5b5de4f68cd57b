package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Monitor.
type Config struct {
	// Dir is a directory on the file system to watch.
	Dir string
	// MinFreeBytes is the floor: with less free space the disk is low.
	// Once low, it stays low until free space is a tenth above the floor,
	// so a disk that hovers at the floor does not flap.
	MinFreeBytes int64
	// Interval is how often the free space is checked.
	Interval time.Duration
}

// DefaultConfig returns the defaults: a check every second and no Dir nor
// floor, which the caller must set.
func DefaultConfig() Config { return Config{Interval: time.Second} }

// Validate reports a configuration the Monitor cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("disk: Dir must be set"))
	}
	if c.MinFreeBytes <= 0 {
		errs = append(errs, fmt.Errorf("disk: MinFreeBytes %d must be positive", c.MinFreeBytes))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("disk: Interval %s must be positive", c.Interval))
	}
	return errors.Join(errs...)
}

// Space is the size of a file system, in bytes.
type Space struct {
	// Free is the space this process may still write.
	Free uint64
	// Total is the size of the file system.
	Total uint64
}

// StatFunc reports the space of the file system holding dir.
type StatFunc func(dir string) (Space, error)

// Deps are the Monitor's collaborators.
type Deps struct {
	// Stat reads the free space; nil means Statfs. Tests inject a fake to
	// simulate a full disk.
	Stat       StatFunc
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Monitor tells whether a file system is short of space. Create it with
// New and keep it current with Run.
type Monitor struct {
	cfg    Config
	stat   StatFunc
	logger *slog.Logger
	free   prometheus.Gauge
	low    prometheus.Gauge
	state  atomic.Pointer[state]
	// statErr is the last error of stat, logged once; only the goroutine
	// that checks touches it.
	statErr string
}

// state is the result of the last successful check.
type state struct {
	low    bool
	reason string
}

// New builds a monitor and checks the space once, so that Low is right
// from the start. It fails when that first check fails.
func New(cfg Config, deps Deps) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Stat == nil {
		deps.Stat = Statfs
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	m := &Monitor{
		cfg: cfg, stat: deps.Stat, logger: deps.Logger.With("component", "disk"),
		free: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "contrail_disk_free_bytes", Help: "Free space of the file system holding the data directory.",
			ConstLabels: prometheus.Labels{"dir": cfg.Dir},
		}),
		low: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "contrail_disk_low", Help: "1 while free disk space is below the floor (min_free_bytes) and the collector refuses events, else 0.",
		}),
	}
	m.state.Store(&state{})
	sp, err := m.stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("checking free space of %s (set the floor to 0 to turn the disk guard off): %w", cfg.Dir, err)
	}
	m.apply(sp)
	deps.Registerer.MustRegister(m.free, m.low)
	return m, nil
}

// Low reports whether free space is below the floor, and if so why, in a
// sentence for operators. It is safe for concurrent use.
func (m *Monitor) Low() (bool, string) {
	s := m.state.Load()
	return s.low, s.reason
}

// Run checks the space every Interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			m.check()
		}
	}
}

// check reads the space and updates the state. A failed read keeps the
// last state: one failure of statfs is no reason to refuse or take writes.
func (m *Monitor) check() {
	sp, err := m.stat(m.cfg.Dir)
	if err != nil {
		if msg := err.Error(); msg != m.statErr {
			m.statErr = msg
			m.logger.Warn("checking free disk space failed; keeping the last state", "dir", m.cfg.Dir, "err", err)
		}
		return
	}
	if m.statErr != "" {
		m.statErr = ""
		m.logger.Info("checking free disk space works again", "dir", m.cfg.Dir)
	}
	m.apply(sp)
}

// apply publishes the state for sp and logs a change of state.
func (m *Monitor) apply(sp Space) {
	floor := uint64(m.cfg.MinFreeBytes)
	was := m.state.Load().low
	low := sp.Free < floor || was && sp.Free < floor+floor/10
	s := &state{low: low}
	if low {
		s.reason = fmt.Sprintf("free disk space on %s is %s, below the floor of %s", m.cfg.Dir, formatBytes(sp.Free), formatBytes(floor))
	}
	m.state.Store(s)
	m.free.Set(float64(sp.Free))
	switch {
	case low && !was:
		m.low.Set(1)
		m.logger.Warn("disk space low: refusing events until space is freed", "dir", m.cfg.Dir,
			"free_bytes", sp.Free, "min_free_bytes", floor)
	case !low && was:
		m.low.Set(0)
		m.logger.Info("disk space recovered: taking events again", "dir", m.cfg.Dir,
			"free_bytes", sp.Free, "min_free_bytes", floor)
	}
}

// formatBytes writes b in binary units with one decimal: "255.9 MiB".
func formatBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
