package campaign

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/store"
)

// Reader reads the runs and counters of every LEADS partition of a node's
// store, for the API.
type Reader struct {
	st         *store.Store
	partitions int
}

// NewReader returns a reader over q partitions.
func NewReader(st *store.Store, q int) *Reader { return &Reader{st: st, partitions: q} }

// maxRunsListed bounds one listing.
const maxRunsListed = 1000

// LeadRuns returns a lead's runs, newest first.
func (rd *Reader) LeadRuns(tenantID, leadID string) ([]*Run, error) {
	k := newKeys(lead.Partition(tenantID, leadID, rd.partitions))
	var out []*Run
	err := rd.scan(k.runs(tenantID, leadID), func(_, v []byte) error {
		r, err := decodeRun(v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	sortNewestFirst(out)
	return out, err
}

// Run returns one run of a lead, nil when there is none.
func (rd *Reader) Run(tenantID, leadID, id string) (*Run, error) {
	k := newKeys(lead.Partition(tenantID, leadID, rd.partitions))
	v, err := store.Get(rd.st.DB(), k.run(tenantID, leadID, id))
	if err != nil || v == nil {
		return nil, err
	}
	return decodeRun(v)
}

// CampaignRuns returns up to limit runs of a campaign, newest first,
// filtered by status and lead when they are given.
func (rd *Reader) CampaignRuns(tenantID, campaign, status, leadID string, limit int) ([]*Run, error) {
	if leadID != "" {
		runs, err := rd.LeadRuns(tenantID, leadID)
		out := runs[:0]
		for _, r := range runs {
			if r.Campaign == campaign && (status == "" || r.Status == status) {
				out = append(out, r)
			}
		}
		return trimRuns(out, limit), err
	}
	var out []*Run
	for q := range rd.partitions {
		k := newKeys(q)
		err := rd.scan(k.campaignRuns(tenantID, campaign), func(key, v []byte) error {
			id := string(key[len(k.campaignRuns(tenantID, campaign)):])
			r, err := rd.Run(tenantID, string(v), id)
			if err != nil || r == nil {
				return err
			}
			if status == "" || r.Status == status {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sortNewestFirst(out)
	return trimRuns(out, limit), nil
}

// sortNewestFirst orders runs by start, the latest first; runs started by
// one input in the order they were started (their ids count up).
func sortNewestFirst(runs []*Run) {
	slices.SortFunc(runs, func(a, b *Run) int {
		if c := b.Started.Compare(a.Started); c != 0 {
			return c
		}
		return -compareRunIDs(a.ID, b.ID)
	})
}

// compareRunIDs orders run ids "r<q>-<seq>-<idx>-<n>" by their numbers.
func compareRunIDs(a, b string) int {
	pa, pb := strings.Split(strings.TrimPrefix(a, "r"), "-"), strings.Split(strings.TrimPrefix(b, "r"), "-")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.ParseUint(pa[i], 10, 64)
		y, _ := strconv.ParseUint(pb[i], 10, 64)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return len(pa) - len(pb)
}

func trimRuns(runs []*Run, limit int) []*Run {
	if limit <= 0 || limit > maxRunsListed {
		limit = maxRunsListed
	}
	if len(runs) > limit {
		runs = runs[:limit]
	}
	return runs
}

// Stats are a campaign's counters summed over the partitions.
type Stats struct {
	Entered   int64 `json:"entered"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	Removed   int64 `json:"removed"`
	Waiting   int64 `json:"waiting"`
	// Steps has a row per step of the latest version, with how many runs
	// took it and how many wait in it now.
	Steps []StepStats `json:"steps"`
}

// StepStats counts one step.
type StepStats struct {
	PC      int    `json:"pc"`
	Path    string `json:"path"`
	Type    string `json:"type"`
	Done    int64  `json:"done"`
	Waiting int64  `json:"waiting"`
}

// Stats sums a campaign's counters; ver, when given, names its steps.
func (rd *Reader) Stats(tenantID, campaign string, ver *Version) (Stats, error) {
	var s Stats
	done, at := map[int]int64{}, map[int]int64{}
	for q := range rd.partitions {
		k := newKeys(q)
		prefix := k.stats(tenantID, campaign)
		err := rd.scan(prefix, func(key, v []byte) error {
			if len(v) != 8 {
				return nil
			}
			n := int64(binary.BigEndian.Uint64(v))
			name := string(key[len(prefix):])
			switch {
			case name == statEntered:
				s.Entered += n
			case name == statCompleted:
				s.Completed += n
			case name == statFailed:
				s.Failed += n
			case name == statRemoved:
				s.Removed += n
			case name == statWaiting:
				s.Waiting += n
			case strings.HasPrefix(name, "done."):
				pc, _ := strconv.Atoi(name[5:])
				done[pc] += n
			case strings.HasPrefix(name, "at."):
				pc, _ := strconv.Atoi(name[3:])
				at[pc] += n
			}
			return nil
		})
		if err != nil {
			return s, err
		}
	}
	s.Steps = []StepStats{}
	if ver != nil {
		for pc, st := range ver.prog {
			if st.kind != stepJump {
				s.Steps = append(s.Steps, StepStats{PC: pc, Path: st.path, Type: st.kind, Done: done[pc], Waiting: at[pc]})
			}
		}
	}
	return s, nil
}

func (rd *Reader) scan(prefix []byte, fn func(k, v []byte) error) error {
	it, err := rd.st.NewIter(prefix, store.PrefixEnd(prefix))
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scanning %q: %w", prefix, err)
	}
	return nil
}
