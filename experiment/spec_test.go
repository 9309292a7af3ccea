package experiment

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const minimal = "name: t\nlines: [\"301\"]\n"

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Name = "t"
	want.Lines = []string{"301"}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	if n := s.CollectEpisodesPerLine(); n != 15 {
		t.Fatalf("collect episodes per line = %d, want 15 (5 h of 20 min)", n)
	}
}

func TestParsePartialSectionKeepsDefaults(t *testing.T) {
	s, err := Parse([]byte(minimal + "collect: {hours_per_line: 0.5}\ncross_evaluate: {lines: [\"301\", \"446\"]}\nlines: [\"301\", \"446\"]\n"))
	if err == nil {
		t.Fatalf("duplicate lines key accepted: %+v", s)
	}
	s, err = Parse([]byte("name: t\nlines: [301, \"446\"]\ncollect: {hours_per_line: 0.5}\ncross_evaluate: {lines: [\"301\", \"446\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Collect.EpisodeSeconds != 1200 || s.Collect.LightProbability != 0.1 || s.Collect.HoursPerLine != 0.5 {
		t.Fatalf("collect = %+v", s.Collect)
	}
	if s.CrossEvaluate == nil || s.CrossEvaluate.Episodes != DefaultCrossEpisodes {
		t.Fatalf("cross = %+v", s.CrossEvaluate)
	}
	if s.Lines[0] != "301" {
		t.Fatalf("lines = %q", s.Lines)
	}
	if n := s.CollectEpisodesPerLine(); n != 2 {
		t.Fatalf("episodes = %d, want 2", n)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty file"},
		{"no name", "lines: [\"301\"]\n", "name: required"},
		{"bad name", "name: Big_Name\nlines: [\"301\"]\n", "name: \"Big_Name\""},
		{"no lines", "name: t\n", "lines: needs at least 1"},
		{"bad line", "name: t\nlines: [\"30 1\"]\n", "lines[0]: \"30 1\" is not a line code"},
		{"dup line", "name: t\nlines: [\"301\", \"301\"]\n", "lines[1]: \"301\" appears twice"},
		{"unknown top", minimal + "colect: {}\n", "colect: unknown field"},
		{"unknown nested", minimal + "collect: {hourz: 1}\n", "collect.hourz: unknown field"},
		{"negative hours", minimal + "collect: {hours_per_line: -1}\n", "collect.hours_per_line: -1 must be > 0"},
		{"zero seconds", minimal + "collect: {episode_seconds: 0}\n", "collect.episode_seconds: 0 must be > 0"},
		{"probability", minimal + "collect: {light_probability: 1.5}\n", "collect.light_probability: 1.5 must be > 0 and < 1"},
		{"nan", minimal + "collect: {hours_per_line: .nan}\n", "collect.hours_per_line: NaN must be a finite number"},
		{"type", minimal + "train: {updates: many}\n", "train.updates: \"many\" is not a valid int"},
		{"negative ensemble", minimal + "train: {ensemble_size: -3}\n", "train.ensemble_size: -3 must be >= 1"},
		{"checkpoint", minimal + "train: {updates: 10, checkpoint_every: 20}\n", "train.checkpoint_every: 20 must be <= 10"},
		{"target every zero", minimal + "train: {target_every: 0}\n", "train.target_every: 0 must be >= 1"},
		{"target every negative", minimal + "train: {target_every: -5}\n", "train.target_every: -5 must be >= 1"},
		{"target entropy", minimal + "train: {target_entropy_ratio: 1.5}\n", "train.target_entropy_ratio: 1.5 must be <= 1"},
		{"target entropy negative", minimal + "train: {target_entropy_ratio: -0.1}\n", "train.target_entropy_ratio: -0.1 must be >= 0"},
		{"reward scale", minimal + "train: {reward_scale: 0}\n", "train.reward_scale: 0 must be > 0"},
		{"reach reward", minimal + "train: {reach_reward: .inf}\n", "train.reach_reward: +Inf must be a finite number"},
		{"gamma one", minimal + "train: {gamma: 1}\n", "train.gamma: 1 must be < 1"},
		{"gamma negative", minimal + "train: {gamma: -0.5}\n", "train.gamma: -0.5 must be >= 0"},
		{"critic target", minimal + "train: {critic_target: sarsa}\n", `train.critic_target: "sarsa" must be "policy", "behaviour", "collection" or "greedy"`},
		{"observation", minimal + "train: {observation: pixels}\n", `train.observation: "pixels" must be "reference" or "light"`},
		{"light cost", minimal + "train: {light_cost_cm: -0.001}\n", "train.light_cost_cm: -0.001 must be >= 0"},
		{"decision frames", minimal + "train: {decision_frames: 31}\n", "train.decision_frames: 31 must be <= 30"},
		{"decision frames negative", minimal + "train: {decision_frames: -3}\n", "train.decision_frames: -3 must be >= 0"},
		{"learning rate negative", minimal + "train: {learning_rate: -0.001}\n", "train.learning_rate: -0.001 must be > 0"},
		{"learning rate", minimal + "train: {learning_rate: 2}\n", "train.learning_rate: 2 must be <= 1"},
		{"weight decay negative", minimal + "train: {weight_decay: -0.0001}\n", "train.weight_decay: -0.0001 must be >= 0"},
		{"weight decay", minimal + "train: {weight_decay: 1.5}\n", "train.weight_decay: 1.5 must be <= 1"},
		{"negative seed", minimal + "seed: -1\n", "seed: \"-1\" is not a valid uint64"},
		{"target", minimal + "evaluate: {targets: [up, north]}\n", "evaluate.targets[1]: \"north\" must be one of"},
		{"distance", minimal + "evaluate: {target_distance_cm: 3}\n", "evaluate.target_distance_cm: 3 must be <= 2"},
		{"cross not own", minimal + "cross_evaluate: {lines: [\"301\", \"281\"]}\n", "cross_evaluate.lines[1]: \"281\" is not one of lines"},
		{"cross one", minimal + "cross_evaluate: {lines: [\"301\"]}\n", "cross_evaluate.lines: needs at least 2"},
		{"staleness", minimal + "policy: {max_staleness: -1}\n", "policy.max_staleness: -1 must be >= 0"},
		{"section scalar", minimal + "collect: 5\n", "collect: must be a mapping"},
		{"lines scalar", "name: t\nlines: 301\n", "lines: must be a list"},
		{"name list", "name: [a]\nlines: [\"301\"]\n", "name: must be a single value"},
		{"name bool", "name: true\nlines: [\"301\"]\n", "name: must be a string"},
		{"two docs", minimal + "---\n" + minimal, "more than one YAML document"},
		{"syntax", "name: [\n", "experiment: yaml"},
		{"alias", "name: &a t\nlines: [*a]\n", "lines[0]: YAML aliases are not allowed"},
		{"too many episodes", minimal + "collect: {hours_per_line: 1000, episode_seconds: 0.001}\n", "more than 1000000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatalf("accepted %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestKnownLines(t *testing.T) {
	known := func(c string) bool { return c == "301" || c == "446" }
	if _, err := ParseWith([]byte("name: t\nlines: [\"301\", \"446\"]\n"), Options{KnownLine: known}); err != nil {
		t.Fatal(err)
	}
	_, err := ParseWith([]byte("name: t\nlines: [\"301\", \"999\"]\n"), Options{KnownLine: known})
	if !errors.Is(err, ErrUnknownLine) || !strings.Contains(err.Error(), "lines[1]") {
		t.Fatalf("err = %v, want ErrUnknownLine naming lines[1]", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "lines[1]" {
		t.Fatalf("FieldError = %+v", fe)
	}
}

func TestTargets(t *testing.T) {
	s, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		i    int
		name string
		x, y float64
	}{{0, "up", 0, -1.5}, {1, "down", 0, 1.5}, {2, "left", -1.5, 0}, {3, "right", 1.5, 0}, {4, "up", 0, -1.5}}
	for _, c := range cases {
		n, x, y := s.Target(c.i)
		if n != c.name || x != c.x || y != c.y {
			t.Errorf("Target(%d) = %s %v %v, want %s %v %v", c.i, n, x, y, c.name, c.x, c.y)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	s, err := Parse([]byte("name: t\nlines: [\"301\", \"446\"]\ncross_evaluate: {lines: [\"446\", \"301\"], episodes: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(s, back) {
		t.Fatalf("round trip: %+v != %+v", back, s)
	}
}

func TestExampleFiles(t *testing.T) {
	dir := filepath.Join("..", "experiments")
	cases := []struct {
		file       string
		lines      int
		collect    int
		cross      int
		crossEps   int
		ensemble   int
		updates    int
		evaluation int
		gamma      float64
		critic     string
		lr         float64
	}{
		{"reference.yaml", 7, 15, 3, 10, 20, 100000, 10, 0.99, CriticTargetPolicy, 1e-3},
		{"demo.yaml", 3, 24, 0, 0, 8, 15000, 10, 0.95, CriticTargetBehaviour, 1e-3},
		{"science.yaml", 5, 60, 3, 80, 10, 20000, 20, 0.95, CriticTargetBehaviour, 1e-3},
		{"online.yaml", 4, 12, 0, 0, 10, 20000, 100, 0.95, CriticTargetCollection, 1e-3},
		{"zoo-light.yaml", 5, 60, 3, 80, 10, 20000, 20, 0.95, CriticTargetBehaviour, 1e-3},
		{"zoo-light-long.yaml", 5, 60, 3, 80, 10, 20000, 20, 0.99, CriticTargetBehaviour, 1e-3},
		{"zoo-light-cost.yaml", 5, 60, 3, 80, 10, 20000, 20, 0.95, CriticTargetBehaviour, 1e-3},
		{"zoo-light-100k.yaml", 5, 60, 3, 80, 10, 100000, 20, 0.95, CriticTargetBehaviour, 1e-3},
	}
	for _, c := range cases {
		s, err := ParseFile(filepath.Join(dir, c.file), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Lines) != c.lines || s.CollectEpisodesPerLine() != c.collect || len(s.CrossLines()) != c.cross || crossEpisodes(s) != c.crossEps ||
			s.Train.EnsembleSize != c.ensemble || s.Train.Updates != c.updates || s.Evaluate.EpisodesPerCondition != c.evaluation ||
			s.Train.Gamma != c.gamma || s.Train.CriticTarget != c.critic || s.Train.LR() != c.lr {
			t.Errorf("%s: %+v", c.file, s)
		}
		if s.Train.LightObservation() != strings.HasPrefix(c.file, "zoo-light") {
			t.Errorf("%s: observation %q", c.file, s.Train.Observation)
		}
		if want := map[bool]float64{true: 0.002}[c.file == "zoo-light-cost.yaml"]; s.Train.LightCostCM != want {
			t.Errorf("%s: light cost %v cm, want %v", c.file, s.Train.LightCostCM, want)
		}
		if s.Online() != (c.file == "online.yaml") {
			t.Errorf("%s: online %v", c.file, s.Online())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Errorf("experiments/README.md: %v", err)
	}
}

// crossEpisodes is the spec's episodes per cross-evaluation pair, 0 without a cross-evaluation.
func crossEpisodes(s Spec) int {
	if s.CrossEvaluate == nil {
		return 0
	}
	return s.CrossEvaluate.Episodes
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("name: t\nlines: [\"301\", \"446\"]\ncross_evaluate: {lines: [\"446\", \"301\"], episodes: 3}\n"))
	f.Add([]byte("name: &a t\nlines: [*a]\n"))
	f.Add([]byte("collect: {hours_per_line: .inf}\n"))
	f.Add([]byte("- a\n- b\n"))
	if b, err := os.ReadFile(filepath.Join("..", "experiments", "reference.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse returned a spec that fails Validate: %v", err)
		}
		b, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(b)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// TestSpecWithoutOnlineFieldsIsOffline: a spec recorded before there were modes (JSON in a
// coordinator's log or snapshot: no mode, warm-up or checkpoint fields) still validates, as
// offline.
func TestSpecWithoutOnlineFieldsIsOffline(t *testing.T) {
	s := Default()
	s.Name, s.Lines = "old", []string{"301"}
	s.Train.Mode, s.Train.WarmupHours, s.Train.Explore = "", 0, 0
	s.Evaluate.CheckpointHours, s.Evaluate.CheckpointEpisodes = 0, 0
	s.Train.LearningRate = 0
	if err := s.Validate(); err != nil || s.Online() {
		t.Fatalf("validate: %v, online %v", err, s.Online())
	}
	if lr := s.Train.LR(); lr != DefaultLearningRate {
		t.Fatalf("a spec without a learning rate trains at %v, want the reference's %v", lr, DefaultLearningRate)
	}
}
