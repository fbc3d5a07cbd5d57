package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newExecCmd()) }

func newExecCmd() *cobra.Command {
	var o cli.ExecOptions
	cmd := &cobra.Command{
		Use:     "exec POD [-c CONTAINER] [-i] -- COMMAND [ARGS...]",
		Short:   "Run a command in a container; exits with the command's exit code",
		Example: "  skiff exec web-5d8f7-abcde -- cat /etc/resolv.conf\n  echo hi | skiff exec -i web-5d8f7-abcde -- cat",
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash != 1 || len(args) < 2 {
				return errors.New("usage: skiff exec POD [-c CONTAINER] -- COMMAND [ARGS...]")
			}
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Exec(ctx, args[0], args[1:], o) })
		},
	}
	cmd.Flags().StringVarP(&o.Container, "container", "c", "", "the container (needed when the pod has several)")
	cmd.Flags().BoolVarP(&o.Stdin, "stdin", "i", false, "send this process's stdin to the command")
	return cmd
}
