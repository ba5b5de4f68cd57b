package collect

import "github.com/contrailhq/contrail/internal/tenant"

// Disk tells whether the node's disk is too full to take events;
// *disk.Monitor implements it. Low is called on every request.
type Disk interface {
	Low() (low bool, reason string)
}

// Seconds a refused client is told to wait before it retries.
const (
	// A pause is an operator's decision: it lasts minutes, not seconds.
	pausedRetryAfter = 60
	// Space comes back when retention, compaction or an operator frees it.
	diskLowRetryAfter = 30
)

// authenticated makes t the request's tenant, then refuses the request when
// t's events cannot be taken now: t is paused and refuses intake while
// paused, or the disk is low. It runs as soon as the write key is known, so
// a refused request is not decoded, and nothing of it is stored.
func (c *Collector) authenticated(req *request, t *tenant.Tenant) *reqError {
	req.tenant = t
	if t.IsPaused() && t.Settings.PausedIntake == tenant.IntakeRefuse {
		e := refuse(CodeTenantPaused, "the tenant is paused and refuses events until it is resumed")
		e.retryAfter = pausedRetryAfter
		return e
	}
	if c.deps.Disk != nil {
		// The reason names a path of the server: it is for /readyz and the
		// logs, not for clients.
		if low, _ := c.deps.Disk.Low(); low {
			e := refuse(CodeDiskLow, "the collector is short of disk space; retry later")
			e.retryAfter = diskLowRetryAfter
			return e
		}
	}
	return nil
}
