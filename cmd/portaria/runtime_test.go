package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentGivesTheHeadroomOfAFewHashesAndNeverLessThanTheDefault(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                  string
		headroom, floor, live uint64
		want                  int
	}{
		{"one slot, a hash in progress", 76 * mib, 19 * mib, 21 * mib, 361},
		{"a live heap below the slots' memory counts as that", 76 * mib, 38 * mib, 3 * mib, 200},
		{"before the first collection", 76 * mib, 38 * mib, 0, 200},
		{"a live heap larger than the headroom keeps the default", 76 * mib, 38 * mib, 200 * mib, 100},
	} {
		if got := gcPercent(c.headroom, c.floor, c.live); got != c.want {
			t.Errorf("%s: gcPercent(%d, %d, %d) = %d, want %d", c.name, c.headroom, c.floor, c.live, got, c.want)
		}
	}
}

// waitGCTuning collects until the tuner's state is want: it changes after a collection.
func waitGCTuning(t *testing.T, want bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); gcTuning.Load() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("GC tuning is %v, want %v", !want, want)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTuneGCLeavesTheOperatorsSettingAndEndsWithTheServer(t *testing.T) {
	waitGCTuning(t, false) // a server of an earlier test may still be tuning
	log := slog.New(slog.DiscardHandler)
	hashes := func() (uint64, uint64) { return 19 << 20, 19 << 20 }
	for _, set := range []string{"GOGC", "GOMEMLIMIT"} {
		tuneGC(t.Context(), func(k string) string { return map[string]string{set: "1"}[k] }, hashes, log)
		if gcTuning.Load() {
			t.Fatalf("with %s set, the collector was tuned", set)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tuneGC(ctx, func(string) string { return "" }, hashes, log)
	if !gcTuning.Load() {
		t.Fatal("without GOGC or GOMEMLIMIT, the collector was not tuned")
	}
	runtime.GC()
	runtime.GC()
	if p := gogc(); p <= 100 {
		t.Errorf("while tuned, GOGC is %d, want more than 100 on a small heap", p)
	}
	cancel()
	waitGCTuning(t, false)
	if p := gogc(); p != 100 {
		t.Errorf("after the server, GOGC is %d, want the default 100 back", p)
	}
}

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
