package runner

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/results"
)

// onlineYAML is a small online experiment: 0.5 h per line in 150 s episodes, 3 of them the
// warm-up and 9 online; 12 versions of 10 updates; checkpoints every 0.125 h of online data.
const onlineYAML = `
name: online
seed: 4
lines: ["281", "73"]
arenas_per_line: 2
collect: { hours_per_line: 0.5, episode_seconds: 150, light_probability: 0.1 }
train: { mode: online, warmup_hours: 0.125, explore: 0.2, ensemble_size: 1, updates: 120, checkpoint_every: 10,
  batch_size: 32, target_every: 1, reward_scale: 100, reach_reward: 0, gamma: 0.95, critic_target: collection }
evaluate: { episodes_per_condition: 2, episode_seconds: 60, checkpoint_hours: 0.125, checkpoint_episodes: 1 }
policy: { max_staleness: STALE }
`

// onlineVersions returns, per online or checkpoint episode of the run folder, the named
// version (from the plan's rule: online episode i of a line names i+1) and the versions its
// frames were decided with.
func actedVersions(t *testing.T, dir string) map[string][]uint64 {
	t.Helper()
	run, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint64{}
	for _, e := range run.Episodes {
		if e.Condition != episode.KindOnline {
			continue
		}
		seen := map[uint64]bool{}
		for _, f := range e.Frames {
			if f.Ver != 0 && !seen[f.Ver] {
				seen[f.Ver] = true
				out[e.ID] = append(out[e.ID], f.Ver)
			}
		}
	}
	return out
}

// TestOnlineRunIsReproducibleWithoutStaleness: with policy.max_staleness 0 an online episode
// acts with exactly the version it names and each version trains on a fixed set of episodes,
// so two runs with different arena counts give the same report, and the report counts the
// animal time of the warm-up and online episodes and draws the learning curve.
func TestOnlineRunIsReproducibleWithoutStaleness(t *testing.T) {
	yaml := strings.Replace(onlineYAML, "STALE", "0", 1)
	var nums [2][]byte
	var rep *results.Report
	for i, arenas := range []string{"arenas_per_line: 2", "arenas_per_line: 3"} {
		y := strings.Replace(yaml, "arenas_per_line: 2", arenas, 1)
		cfg := tinyConfig(t, y)
		rep = run(t, cfg)
		nums[i] = reportNumbers(t, cfg.Dir)
		acted := actedVersions(t, cfg.Dir)
		if len(acted) != 2*9 {
			t.Fatalf("%d online episodes acted, want 18", len(acted))
		}
		// Item numbers: 6 warm-up episodes (0-5), 2 training tasks (6, 7), then the online
		// episodes episode-major from 8: online episode i of a line is item 8 + 2i (+1).
		for id, vs := range acted {
			n := itemNumber(t, id)
			want := uint64((n-8)/2 + 1)
			if len(vs) != 1 || vs[0] != want {
				t.Errorf("online episode %s acted with versions %v, want exactly %d", id, vs, want)
			}
		}
		if i == 1 {
			b, err := os.ReadFile(filepath.Join(cfg.Dir, results.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"animal_hours"`)) || !bytes.Contains(b, []byte(`"learning_curve"`)) {
				t.Fatalf("report.json lacks animal_hours or learning_curve")
			}
		}
	}
	if !bytes.Equal(nums[0], nums[1]) {
		t.Errorf("the two online runs differ:\n%s\n%s", nums[0], nums[1])
	}
	for _, l := range rep.Lines {
		if math.Abs(l.AnimalHours-0.5) > 0.01 {
			t.Errorf("line %s: %v animal hours, want 0.5 (12 episodes of 150 s)", l.Line, l.AnimalHours)
		}
		if l.EpisodesUsed != 12 || l.PolicyVersion != 12 {
			t.Errorf("line %s: trained on %d episodes to version %d, want 12 and 12", l.Line, l.EpisodesUsed, l.PolicyVersion)
		}
		// Checkpoints at 0, 3 and 6 online episodes (versions 1, 4 and 7: 0.125, 0.25 and
		// 0.375 h) and the final evaluation at 0.5 h.
		var hours []float64
		for _, p := range l.Curve {
			hours = append(hours, math.Round(p.AnimalHours*1000)/1000)
		}
		if want := []float64{0.125, 0.25, 0.375, 0.5}; !equalFloats(hours, want) || l.Curve[0].Version != 1 || l.Curve[3].Kind != episode.KindAgent {
			t.Errorf("line %s: learning curve %+v, want points at %v h", l.Line, l.Curve, want)
		}
	}
}

// TestOnlineStalenessIsBounded: with policy.max_staleness 1 an online episode naming version n
// acts with a version within [n-1, n+1]: it may start once n-1 is out, and the learner
// publishes n+2 only once every episode naming up to n is done.
func TestOnlineStalenessIsBounded(t *testing.T) {
	cfg := tinyConfig(t, strings.Replace(onlineYAML, "STALE", "1", 1))
	run(t, cfg)
	for id, vs := range actedVersions(t, cfg.Dir) {
		named := uint64((itemNumber(t, id)-8)/2 + 1)
		for _, v := range vs {
			if v+1 < named || v > named+1 {
				t.Errorf("online episode %s naming version %d acted with version %d", id, named, v)
			}
		}
	}
}

func itemNumber(t *testing.T, id string) int {
	t.Helper()
	i := strings.LastIndexByte(id, '.')
	n := 0
	for _, c := range id[i+1:] {
		if c < '0' || c > '9' {
			t.Fatalf("item id %q", id)
		}
		n = 10*n + int(c-'0')
	}
	return n
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
