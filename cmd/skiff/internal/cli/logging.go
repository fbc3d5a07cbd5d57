package cli

import (
	"log/slog"
	"os"

	"k8s.io/klog/v2"
)

// SetupClientLogging makes client commands quiet: warnings only at -v 0, info at 1, debug at 2+.
// client-go's own klog lines (e.g. discovery retries) would repeat the one clear error the
// command prints, so they appear only from -v 2 on.
func SetupClientLogging(verbosity int) {
	level := slog.LevelWarn
	switch {
	case verbosity >= 2:
		level = slog.LevelDebug
	case verbosity == 1:
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	if verbosity >= 2 {
		klog.SetSlogLogger(logger)
		return
	}
	klog.SetSlogLogger(slog.New(slog.DiscardHandler))
}
