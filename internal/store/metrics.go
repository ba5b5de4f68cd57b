package store

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the store's LSM figures as Prometheus metrics, read
// from Pebble at each scrape: what was written to the WAL, flushed and
// compacted (their ratio is the write amplification), each level's size
// and tables, the compaction debt and the memtables. They show whether the
// shards' state is what keeps the disk and a core busy.
type Collector struct {
	s *Store

	walBytes, flushBytes, compactBytes, compactions *prometheus.Desc
	levelBytes, levelTables, l0Sublevels            *prometheus.Desc
	debt, memtableBytes, readAmp                    *prometheus.Desc
}

// NewCollector returns a collector of s's metrics; register it once.
func NewCollector(s *Store) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("contrail_store_"+name, help, labels, nil)
	}
	return &Collector{
		s:             s,
		walBytes:      d("wal_written_bytes_total", "Bytes written to the state store's write-ahead log."),
		flushBytes:    d("flushed_bytes_total", "Bytes of sstables written by memtable flushes."),
		compactBytes:  d("compacted_bytes_total", "Bytes of sstables written by compactions, by output level.", "level"),
		compactions:   d("compactions_total", "Compactions of the state store, by kind (default, move, delete, ...).", "kind"),
		levelBytes:    d("level_bytes", "Size of each LSM level's sstables.", "level"),
		levelTables:   d("level_tables", "Number of sstables in each LSM level.", "level"),
		l0Sublevels:   d("l0_sublevels", "L0 sublevels: the read amplification of L0."),
		debt:          d("compaction_debt_bytes", "Estimated bytes compactions must still rewrite to reach a stable shape."),
		memtableBytes: d("memtable_bytes", "Bytes allocated to memtables, flushed or not."),
		readAmp:       d("read_amplification", "Sstables or sublevels a point read may consult."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.walBytes, c.flushBytes, c.compactBytes, c.compactions,
		c.levelBytes, c.levelTables, c.l0Sublevels, c.debt, c.memtableBytes, c.readAmp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.db.Metrics()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.walBytes, float64(m.WAL.BytesWritten))
	var flushed uint64
	for i, l := range m.Levels {
		level := strconv.Itoa(i)
		flushed += l.TableBytesFlushed
		counter(c.compactBytes, float64(l.TableBytesCompacted), level)
		gauge(c.levelBytes, float64(l.TablesSize), level)
		gauge(c.levelTables, float64(l.TablesCount), level)
	}
	counter(c.flushBytes, float64(flushed))
	counter(c.compactions, float64(m.Compact.DefaultCount), "default")
	counter(c.compactions, float64(m.Compact.MoveCount), "move")
	counter(c.compactions, float64(m.Compact.DeleteOnlyCount), "delete_only")
	counter(c.compactions, float64(m.Compact.ElisionOnlyCount), "elision_only")
	counter(c.compactions, float64(m.Compact.ReadCount), "read")
	counter(c.compactions, float64(m.Compact.RewriteCount), "rewrite")
	counter(c.compactions, float64(m.Compact.MultiLevelCount), "multi_level")
	gauge(c.l0Sublevels, float64(m.Levels[0].Sublevels))
	gauge(c.debt, float64(m.Compact.EstimatedDebt))
	gauge(c.memtableBytes, float64(m.MemTable.Size))
	gauge(c.readAmp, float64(m.ReadAmp()))
}
