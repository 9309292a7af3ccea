// Package report writes the HTML report of an experiment's run folder: the experiment's settings,
// the per-line table of agent against no light and random light, and every figure of package
// charts (closest-approach distributions, time-to-target survival curves, trajectories, learning
// curves, policy maps, the cross-evaluation and the effect sizes across lines), in one
// self-contained file with the images embedded as data: URIs.
//
// It reads the run folder through results.Load and the agentlib readers (learner curve points,
// policy maps) and works on partial folders too: an experiment still running or one that failed
// gets a report of what exists, with the missing parts named.
package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/optoloop/optoloop/results"
)

// FileName is the report's file name inside the run folder.
const FileName = "report.html"

// Config configures a report.
type Config struct {
	// Seed seeds the random draws of the figures (bootstrap intervals, point jitter), so that a
	// report of the same run folder is the same. Default 1.
	Seed uint64
	// Resamples is the number of bootstrap resamples of the effect-size intervals. Default 2000.
	Resamples int
	// MaxTrajectories is the most episodes drawn as small multiples per line and condition;
	// the overlay shows them all. Default 10.
	MaxTrajectories int
	// Workers is the number of figures rendered at the same time. Default GOMAXPROCS.
	Workers int
	// Logger receives one line per report written. Default: discard.
	Logger *slog.Logger
	// Now is the clock that stamps the report's generation time. Default time.Now.
	Now func() time.Time
	// Compare lists other run folders whose learning curves against animal time the report's
	// animal-time figure draws with the run's own (offline runs of several hours_per_line
	// beside an online run).
	Compare []string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Seed: 1, Resamples: 2000, MaxTrajectories: 10, Workers: runtime.GOMAXPROCS(0), Logger: slog.New(slog.DiscardHandler), Now: time.Now}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Resamples < 100 || c.Resamples > 1_000_000:
		return fmt.Errorf("report: resamples %d must be in [100, 1000000]", c.Resamples)
	case c.MaxTrajectories < 1 || c.MaxTrajectories > 1000:
		return fmt.Errorf("report: max trajectories %d must be in [1, 1000]", c.MaxTrajectories)
	case c.Workers < 1:
		return fmt.Errorf("report: workers %d must be positive", c.Workers)
	case c.Logger == nil:
		return errors.New("report: logger is required")
	case c.Now == nil:
		return errors.New("report: clock (Now) is required")
	}
	return nil
}

// Report is a built report: its HTML and what went into it.
type Report struct {
	HTML    []byte
	Figures []Figure
	// Missing names the absent parts of the run folder; Problems the parts that could not be
	// read.
	Missing, Problems []string
}

// Write builds the report of the run folder runDir with DefaultConfig and writes it to
// runDir/report.html (atomically). It returns the file's path.
func Write(ctx context.Context, runDir string) (string, error) {
	return WriteWith(ctx, runDir, DefaultConfig())
}

// WriteWith is Write with a Config.
func WriteWith(ctx context.Context, runDir string, cfg Config) (string, error) {
	rep, err := Build(ctx, runDir, cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(runDir, FileName)
	if err := results.WriteFileAtomic(path, rep.HTML); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	cfg.Logger.Info("report written", "path", path, "figures", len(rep.Figures), "missing", len(rep.Missing), "problems", len(rep.Problems))
	return path, nil
}

// Build reads the run folder and renders the report in memory. It fails only when runDir is not
// a readable folder, cfg is invalid or ctx ends; absent or unreadable parts of the folder are
// named in the report instead.
func Build(ctx context.Context, runDir string, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := load(runDir)
	if err != nil {
		return nil, err
	}
	figs, err := renderAll(ctx, r.plan(cfg), cfg.Workers)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := r.writeHTML(&buf, figs, cfg.Now()); err != nil {
		return nil, err
	}
	return &Report{HTML: buf.Bytes(), Figures: figs, Missing: r.missing, Problems: r.problems}, nil
}
