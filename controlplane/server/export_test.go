package server

import "time"

// SetAPIServerLeaseTiming shortens the kubernetes endpoints' lease timing for a test.
func SetAPIServerLeaseTiming(duration, renew time.Duration) (restore func()) {
	d, r := apiserverLeaseDuration, apiserverLeaseRenew
	apiserverLeaseDuration, apiserverLeaseRenew = duration, renew
	return func() { apiserverLeaseDuration, apiserverLeaseRenew = d, r }
}
