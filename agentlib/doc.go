// Package agentlib is the agent library of optoloop: the deep reinforcement learning agents that
// learn, from recorded worm tracks, when to switch the light so that a worm reaches a target.
//
// It is a directory of small packages and imports no other package of the project:
//
//   - nn: float32 multilayer perceptrons on gonum BLAS (forward, backward, Adam, Xavier init)
//   - obs: the 90-number observation (15 frames x 6 features), its builder, the reward and the
//     augmentation (rotation and shift toward a virtual target)
//   - replay: per-frame records, the in-process replay and (s, a, r, s') window sampling
//   - sac: discrete soft actor-critic as in the reference study
//   - policy: ensembles, the versioned binary parameter format and policy maps
//   - learner: trains the members of an ensemble in parallel, checkpoints, resumes, writes
//     learning curves and publishes parameter versions
package agentlib
