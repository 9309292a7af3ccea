package report

import (
	"context"
	"testing"
)

// BenchmarkReferenceReport renders the full report of a reference-scale run folder: 7 lines,
// 10 episodes x 3 conditions x 1800 frames (600 s) per line, learning curves of 20 members x
// 200 points (100,000 updates, a point every 500), 7 policy maps (9 x 9 x 36 x 36) and a 3 x 3
// cross-evaluation. Like a real reference run folder it also holds the data-collection episodes
// (5 h per line: 15 x 20 min, 3600 frames each) and the cross-evaluation episodes (10 per pair),
// which are read but not drawn. Reading the folder is part of each iteration; writing it is not.
func BenchmarkReferenceReport(b *testing.B) {
	dir := b.TempDir()
	synth{
		lines:    []string{"281", "301", "352", "446", "336", "437", "73"},
		episodes: 10, frames: 1800, members: 20, curvePts: 200,
		cross: []string{"281", "301", "352"}, crossEpisodes: 10, report: true, experiment: true, maps: true,
		collect: 15, collectFrames: 3600,
	}.write(b, dir)
	cfg := DefaultConfig()
	b.ResetTimer()
	for b.Loop() {
		if _, err := WriteWith(context.Background(), dir, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
