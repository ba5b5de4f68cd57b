package deliver

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/contrailhq/contrail/internal/store"
)

// Statuses of a Result.
const (
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// resultPrefix starts the key of every Result.
const resultPrefix = "\x00dlv/"

// Result is how an effect ended. It is written once, when the effect is
// done, under "\x00dlv/<key>".
type Result struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	Status string `json:"status"` // StatusDelivered or StatusFailed
	// Attempts counts the attempts made by the process that finished the
	// effect; a restart counts from zero again.
	Attempts int `json:"attempts"`
	// HTTPStatus is the status of a webhook's last response (0 for none).
	HTTPStatus int `json:"http_status,omitempty"`
	// Error says why the effect failed; empty when delivered.
	Error string `json:"error,omitempty"`
	// DeliveredAt is when the effect was done: delivered, or given up.
	DeliveredAt  time.Time `json:"delivered_at"`
	FirstAttempt time.Time `json:"first_attempt"`
}

func resultKey(key string) []byte { return []byte(resultPrefix + key) }

// Result reads the result of the effect with key; ok is false while it is
// not done (or was never handed over).
func (s *Sender) Result(key string) (r Result, ok bool, err error) {
	v, err := store.Get(s.deps.Store.DB(), resultKey(key))
	if err != nil || v == nil {
		return Result{}, false, err
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return Result{}, false, fmt.Errorf("decoding result of %q: %w", key, err)
	}
	return r, true, nil
}
