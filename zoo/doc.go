// Package zoo is a line zoo and its hand-policy bounds: a seeded generator of catalogue lines
// that span the simulator's response space, for testing whether agents adapt to sites whose
// responses nobody tuned the training for, and the best of a fixed family of simple state-based
// light policies on any line, a floor on what an agent should reach there.
//
// Lines. Generate(n, seed) draws n lines in the format of arenas/sim/lines.yaml (sim.Line), so
// that `--lines-file` takes Zoo.YAML and sim.ParseCatalogue validates it. Each line has one
// Family: a single effect (reversal rate up or down, shallow turns, reversals at light onset,
// a rebound at light offset, omega share, speed up or down, pausing, head-swing amplitude,
// phase-tied steering of either sign, bias reset), a combination (pirouette, rebound-turn,
// straight-run, freeze-steer) or none (Control: an opsin line whose response is neutral, the
// negative control). Responsive lines also draw onset and offset lags, and some draw weak
// responders or habituation; the sign and opsin (ChR2(H134R), Chrimson, GtACR2, GtACR1 at a
// wavelength that activates it) are drawn too. Codes are "Z<seed>-<k>", which never collide
// with the reference catalogue's numbers. A generated line cites no literature, and says so:
// its sources name the generator, the seed, the line and the family for the neurons, the opsin
// and every parameter that differs from the neutral value, which is what the catalogue's
// validator asks for (no marker or exception in the validator was needed). Lines 2j and 2j+1
// share a family; even lines form the training split and odd lines the held-out split (each
// line's notes record its family and split: SplitOf, FamilyOf), so settings can be chosen on one
// half and judged on the other over the same families.
//
// Hand policies. HandFamily is a fixed family of 22 policies acting on the agent's observation
// (package agentlib/obs) alone: light while facing away from or toward the target, 1 s and 2 s
// pulses when facing away or toward, and light or pulses timed to the head-swing phase (the head
// on, or swinging toward, the target's side or the other side), each with a few thresholds. An
// Acting policy satisfies worker.Policy, so it runs in the very episode loop an agent's ensemble
// runs in: the worker builds the observation, calls Act only once 15 frames are tracked and
// switches the light off on a lost frame, exactly as for the agents.
//
// Bounds. Bounds runs, per line, every policy of the family on the same selection episodes,
// picks the one with the lowest mean closest approach, and then measures it, no light and random
// light at its measured on-rate on fresh evaluation episodes (other animals and schedules),
// with the evaluation protocol of an experiment file (episodes per condition, episode length,
// target distance and directions) and the report's test (results.MannWhitneyU), so the figure
// reported for the chosen policy carries no selection bias. Every episode runs through package
// station, as the experiment engine's episodes do.
//
// Table. Compare joins an experiment's report with the bounds of the same lines into the zoo
// table and evaluates the criteria.
package zoo
