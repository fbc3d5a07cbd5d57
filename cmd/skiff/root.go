package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// rootCmd is the skiff command; every subcommand file adds itself to it in an init function.
var rootCmd = &cobra.Command{
	Use:           "skiff",
	Short:         "skiff is a container orchestrator in which networking comes first",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
