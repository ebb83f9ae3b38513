// Package cli holds every command of the llm-scheduler binary; main only
// calls Run.
//
//   - run.go: the dispatcher, `serve`, `migrate` and `version`;
//   - apikey.go: `apikey` and `secrets`, which work on the database directly;
//   - bench.go: `bench` (internal/bench does the measuring);
//   - cli.go, task.go, model.go, follow.go, stream.go, client.go: the `task`
//     and `model` commands, a client of a running scheduler over its REST
//     API (and the GraphQL websocket for --wait and watch), like any other
//     client: `--server URL`, `--api-key` or LLMSCHED_API_KEY.
//
// docs/cli.md is the reference of the client commands.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes. A script can tell from the code alone what happened.
const (
	// ExitOK: the command did what was asked; with --wait or watch, the
	// task completed.
	ExitOK = 0
	// ExitTaskFailed: the task ended failed (--wait, watch).
	ExitTaskFailed = 1
	// ExitUsage: the command line is wrong (unknown command, flag, value).
	ExitUsage = 2
	// ExitTaskCancelled: the task ended cancelled (--wait, watch).
	ExitTaskCancelled = 3
	// ExitRefused: the scheduler refused the request (invalid input, not
	// found, conflict, not allowed; the HTTP 4xx answers but 429).
	ExitRefused = 4
	// ExitUnavailable: the scheduler could not be reached or could not
	// serve the request (connection refused, 5xx, 429 queue full).
	ExitUnavailable = 5
	// ExitTimeout: --timeout passed before the task ended.
	ExitTimeout = 6
)

// Error is a failed command with its exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the process exit code the command asks for.
func (e *Error) ExitCode() int { return e.Code }

func fail(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

func usageErr(format string, args ...any) error { return fail(ExitUsage, format, args...) }

// IO is where a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
}

func (o IO) getenv(k string) string {
	if o.Getenv == nil {
		return os.Getenv(k)
	}
	return o.Getenv(k)
}

// DefaultServer is the scheduler the commands talk to without --server or
// LLMSCHED_SERVER.
const DefaultServer = "http://127.0.0.1:8080"

// common holds the flags every command takes.
type common struct {
	server string
	apiKey string
	json   bool
}

func (c *common) register(fs *flag.FlagSet, o IO) {
	def := o.getenv("LLMSCHED_SERVER")
	if def == "" {
		def = DefaultServer
	}
	fs.StringVar(&c.server, "server", def, "scheduler base URL (env LLMSCHED_SERVER)")
	fs.StringVar(&c.apiKey, "api-key", o.getenv("LLMSCHED_API_KEY"), "API key (env LLMSCHED_API_KEY)")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts")
}

// parse parses flags that may stand before, between or after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &Error{Code: ExitOK, Err: errHelpShown}
			}
			return nil, usageErr("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "-" || !strings.HasPrefix(args[0], "-") {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		// "--" ends the flags: the rest is positional.
		return append(pos, args[1:]...), nil
	}
}

// errHelpShown ends a command after -h printed its usage.
var errHelpShown = errors.New("")

func newFlags(name string, o IO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	return fs
}

// clientMain runs `llm-scheduler GROUP ...` (GROUP task or model) and returns the
// process exit code, having printed any error.
func clientMain(group string, args []string, o IO) int {
	var err error
	switch group {
	case "task":
		err = taskCommand(args, o)
	case "model":
		err = modelCommand(args, o)
	default:
		err = usageErr("unknown command %q", group)
	}
	if err == nil {
		return ExitOK
	}
	code := ExitUsage
	var ce *Error
	if errors.As(err, &ce) {
		code = ce.Code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(o.Stderr, "llm-scheduler:", msg)
	}
	return code
}

// sub dispatches a group's subcommand.
func sub(group string, args []string, usage string, o IO, cmds map[string]func([]string, IO) error) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(o.Stdout, usage)
		if len(args) == 0 {
			return &Error{Code: ExitUsage, Err: errHelpShown}
		}
		return nil
	}
	f, ok := cmds[args[0]]
	if !ok {
		return usageErr("unknown command %q %q\n%s", group, args[0], usage)
	}
	return f(args[1:], o)
}

// clientCommand runs a command-line client group (cli.go), which
// prints its own errors and says which exit code to use.
func clientCommand(group string, args []string, stdout, stderr io.Writer) error {
	code := clientMain(group, args, IO{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
	if code == ExitOK {
		return nil
	}
	return exitCode(code)
}

// exitCode ends the process with a code, the message already printed.
type exitCode int

func (e exitCode) Error() string { return "" }
