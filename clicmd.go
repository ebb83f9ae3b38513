package main

import (
	"io"
	"os"

	"github.com/llmsched/llm-scheduler/cli"
)

func init() {
	extraCommands["task"] = clientCommand("task")
	extraCommands["model"] = clientCommand("model")
}

// clientCommand runs a command-line client group (package cli), which
// prints its own errors and says which exit code to use.
func clientCommand(group string) func(args []string, stdout, stderr io.Writer) error {
	return func(args []string, stdout, stderr io.Writer) error {
		code := cli.Main(group, args, cli.IO{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
		if code == cli.ExitOK {
			return nil
		}
		return exitCode(code)
	}
}

// exitCode ends the process with a code, the message already printed.
type exitCode int

func (e exitCode) Error() string { return "" }
