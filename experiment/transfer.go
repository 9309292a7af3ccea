package experiment

import (
	"fmt"
	"math"
	"strconv"
)

// Transfer is the generalisation phase: each of its lines' trained agents runs unchanged in
// new environments, against no-light controls on the same animals. The environments are a
// plate with Obstacles pieces of debris between the start and the target (when Obstacles > 0)
// and, for each of FoodDistancesCM, a food lawn that far from the target.
type Transfer struct {
	// Lines are the lines whose agents run; each must be one of the experiment's lines (it
	// needs a trained ensemble), unique, at least one.
	Lines []string `yaml:"lines" json:"lines"`
	// Episodes is the number of episodes per line, environment and condition (agent, no
	// light), the targets taken in turn (1-10000). Default 20.
	Episodes int `yaml:"episodes" json:"episodes"`
	// EpisodeSeconds is the length of one transfer episode (> 0, at most 86400). Default 600.
	EpisodeSeconds float64 `yaml:"episode_seconds" json:"episode_seconds"`
	// FoodDistancesCM are the distances of the food lawn's centre from the target, one food
	// environment each (0-3 cm, unique; at most 16). See Spec.FoodPlace for where it lies.
	FoodDistancesCM []float64 `yaml:"food_distances_cm,omitempty" json:"food_distances_cm,omitempty"`
	// FoodRadiusCM is the lawn's radius (> 0, at most 1). Default 0.5.
	FoodRadiusCM float64 `yaml:"food_radius_cm" json:"food_radius_cm"`
	// Obstacles is the number of pieces of debris of the obstacle environment (0: none; at
	// most 100), seeded per episode between the start and the target.
	Obstacles int `yaml:"obstacles,omitempty" json:"obstacles,omitempty"`
	// ObstacleRadiusCM is the median radius of a piece of debris (> 0, at most 0.3). Default
	// 0.075.
	ObstacleRadiusCM float64 `yaml:"obstacle_radius_cm" json:"obstacle_radius_cm"`
}

// DefaultTransfer is what an omitted field of a transfer section takes.
func DefaultTransfer() Transfer {
	return Transfer{Episodes: 20, EpisodeSeconds: 600, FoodRadiusCM: 0.5, ObstacleRadiusCM: 0.075}
}

// EnvObstacles is the name of the obstacle environment.
const EnvObstacles = "obstacles"

// FoodEnv is the name of the food environment whose lawn lies dCM from the target:
// "food_5mm" for 0.5 cm.
func FoodEnv(dCM float64) string {
	return "food_" + strconv.FormatFloat(math.Round(dCM*1000)/100, 'f', -1, 64) + "mm"
}

// Environments returns the names of the transfer environments in plan order: obstacles (when
// Obstacles > 0), then one food environment per distance.
func (t Transfer) Environments() []string {
	var out []string
	if t.Obstacles > 0 {
		out = append(out, EnvObstacles)
	}
	for _, d := range t.FoodDistancesCM {
		out = append(out, FoodEnv(d))
	}
	return out
}

// FoodPlace is where the lawn of the i-th transfer episode lies when it is dCM from the
// target (cm from the plate centre, image axes): from the target toward the plate centre (the
// start) turned by 60 degrees, to one side for the first round of targets and to the other for
// the next, so that the lawn is about as far from the start at every distance (for a target
// 1.5 cm out: 1.5, 1.3, 1.3 and 1.5 cm at 0, 0.5, 1 and 1.5 cm) and only its distance from the
// target changes.
func (s Spec) FoodPlace(i int, dCM float64) (xCM, yCM float64) {
	_, tx, ty := s.Target(i)
	r := math.Hypot(tx, ty)
	ux, uy := -tx/r, -ty/r
	turn := math.Pi / 3
	if (i/len(s.Evaluate.Targets))%2 == 1 {
		turn = -turn
	}
	c, sn := math.Cos(turn), math.Sin(turn)
	return tx + dCM*(c*ux-sn*uy), ty + dCM*(sn*ux+c*uy)
}

// validateTransfer checks the transfer section (s.Transfer non-nil).
func (s Spec) validateTransfer() error {
	t := s.Transfer
	if err := checkLines("transfer.lines", t.Lines, 1); err != nil {
		return err
	}
	own := map[string]bool{}
	for _, l := range s.Lines {
		own[l] = true
	}
	for i, l := range t.Lines {
		if !own[l] {
			return fieldErr(fmt.Sprintf("transfer.lines[%d]", i), "%q is not one of lines (its agents must be trained)", l)
		}
	}
	if err := checkInt("transfer.episodes", t.Episodes, 1, 10000); err != nil {
		return err
	}
	if err := checkFloat("transfer.episode_seconds", t.EpisodeSeconds, 0, 86400, true); err != nil {
		return err
	}
	if err := checkFloat("transfer.food_radius_cm", t.FoodRadiusCM, 0, 1, true); err != nil {
		return err
	}
	if err := checkInt("transfer.obstacles", t.Obstacles, 0, 100); err != nil {
		return err
	}
	if err := checkFloat("transfer.obstacle_radius_cm", t.ObstacleRadiusCM, 0, 0.3, true); err != nil {
		return err
	}
	if len(t.FoodDistancesCM) > 16 {
		return fieldErr("transfer.food_distances_cm", "at most 16 distances, got %d", len(t.FoodDistancesCM))
	}
	seen := map[string]bool{}
	for i, d := range t.FoodDistancesCM {
		p := fmt.Sprintf("transfer.food_distances_cm[%d]", i)
		if err := checkFloat(p, d, 0, 3, false); err != nil {
			return err
		}
		if seen[FoodEnv(d)] {
			return fieldErr(p, "%v appears twice", d)
		}
		seen[FoodEnv(d)] = true
		for j := range len(s.Evaluate.Targets) * 2 {
			if x, y := s.FoodPlace(j, d); math.Hypot(x, y) > 2 {
				return fieldErr(p, "%v cm from a target %v cm out puts the lawn %.2f cm from the plate centre, off a 2 cm plate", d, s.Evaluate.TargetDistanceCM, math.Hypot(x, y))
			}
		}
	}
	if len(t.Environments()) == 0 {
		return fieldErr("transfer", "needs food_distances_cm or obstacles (no environment to run)")
	}
	return nil
}
