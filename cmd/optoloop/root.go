package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "optoloop",
		Short:         "Train reinforcement learning agents against optogenetic C. elegans arenas",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newLinesCmd(),
		newSimCmd(),
		newExperimentCmd(),
		newEpisodeCmd(),
		newReportCmd(),
		newAnimalTimeCmd(),
		newPolicyMapCmd(),
		newLightUseCmd(),
		newRigCmd(),
		newCoordinatorCmd(),
		newWorkerCmd(),
		newLearnerCmd(),
		newClusterCmd(),
		newDashboardCmd(),
		newStatusCmd(),
		newTrackCmd(),
		newTraceCmd(),
		newZooCmd(),
	)
	return root
}
