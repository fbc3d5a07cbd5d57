package storage

import (
	"context"
	"log/slog"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// quietLogger passes etcd's (zap) errors on to slog and drops the rest: etcd's info logs are
// very chatty, and a few of its "errors" are routine (listeners closing at shutdown).
func quietLogger() *zap.Logger {
	return zap.New(&slogCore{})
}

type slogCore struct{ fields []zapcore.Field }

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.ErrorLevel }

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{fields: append(append([]zapcore.Field{}, c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// routine are etcd error messages that are not errors for us.
var routine = []string{
	"setting up serving from embedded etcd failed", // listeners closed by Close
	"failed to update storage version",             // a fresh single member before its first snapshot
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	for _, r := range routine {
		if strings.Contains(e.Message, r) {
			return nil
		}
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, c.fields...), fs...) {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(enc.Fields)+2)
	args = append(args, "component", "etcd")
	for k, v := range enc.Fields {
		args = append(args, k, v)
	}
	slog.Default().Log(context.Background(), slog.LevelError, e.Message, args...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
