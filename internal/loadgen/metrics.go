package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

const cpuMetric = "process_cpu_seconds_total"

// readCPUSeconds fetches a Prometheus text exposition from url and returns
// the sum of its process_cpu_seconds_total series (one per process; a
// federating endpoint may expose several).
func readCPUSeconds(ctx context.Context, client *http.Client, url string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("building metrics request: %w", err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return 0, fmt.Errorf("fetching %s: status %s", url, resp.Status)
	}
	return parseCPUSeconds(resp.Body)
}

// parseCPUSeconds sums the process_cpu_seconds_total samples of a Prometheus
// text exposition.
func parseCPUSeconds(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, cpuMetric)
		if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
			continue // a comment, another metric, or one whose name only starts alike
		}
		if rest[0] == '{' {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				return 0, fmt.Errorf("parsing metrics line %q: unterminated labels", line)
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("parsing metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("parsing metrics line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading metrics: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("reading metrics: no %s series", cpuMetric)
	}
	return sum, nil
}
