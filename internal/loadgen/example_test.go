package loadgen_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/contrailhq/contrail/internal/loadgen"
)

// Run drives a collector for a while and reports; here the collector is a
// stand-in that accepts every event.
func ExampleRun() {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Batch []json.RawMessage }
		_ = json.NewDecoder(r.Body).Decode(&body)
		fmt.Fprintf(w, `{"success":true,"accepted":%d,"rejected":0,"results":[]}`, len(body.Batch))
	}))
	defer collector.Close()

	rep, err := loadgen.Run(context.Background(), loadgen.Options{
		URL:       collector.URL,
		WriteKey:  "wk_bench",
		Rate:      2000, // events per second, open loop
		Duration:  200 * time.Millisecond,
		BatchSize: 50,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sent:", rep.Sent+rep.Missed, "accepted all:", rep.Accepted == rep.Sent)
	// rep.WriteText(os.Stdout) prints the summary table.

	// Output: sent: 400 accepted all: true
}
