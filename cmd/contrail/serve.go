package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/contrailhq/contrail/internal/app"
	"github.com/contrailhq/contrail/internal/config"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	cfg, rest, err := config.Load(fs, args, os.Getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", rest)
	}
	logger := newLogger(cfg, stderr)
	node, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return node.Run(ctx, nil)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func version(w io.Writer) error {
	v := app.Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
		_, err := fmt.Fprintf(w, "contrail %s (%s)\n", v, bi.GoVersion)
		return err
	}
	_, err := fmt.Fprintf(w, "contrail %s\n", v)
	return err
}
