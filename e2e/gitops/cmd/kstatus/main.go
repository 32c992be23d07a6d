// Command kstatus prints the kstatus verdict of one Kubernetes object read as JSON on stdin, as
// Flux's health checks see it:
//
//	kubectl get simulation NAME -o json | kstatus
//	InProgress: run 1/2: replaying, 37/120 events
//
// It prints one line `<Status>: <message>` (Status is InProgress, Current, Failed or
// Terminating) and exits 0; on bad input it prints why on stderr and exits 2.
package main

import (
	"fmt"
	"io"
	"os"

	"rehearsal.invalid/e2e/gitops/kstatus"
)

// maxInput bounds what is read from stdin; one object is far smaller.
const maxInput = 32 << 20

const usage = "usage: kubectl get KIND NAME -o json | kstatus\n" +
	"Prints the object's kstatus (sigs.k8s.io/cli-utils) verdict as `<Status>: <message>`; exits 2 on bad input.\n"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "kstatus: unexpected argument %q: the object is read from stdin\n%s", args[0], usage)
		return 2
	}
	data, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
	if err != nil {
		fmt.Fprintf(stderr, "kstatus: reading stdin: %v\n", err)
		return 2
	}
	if len(data) > maxInput {
		fmt.Fprintf(stderr, "kstatus: stdin holds more than %d MiB: expected one object\n", maxInput>>20)
		return 2
	}
	line, err := kstatus.Line(data)
	if err != nil {
		fmt.Fprintf(stderr, "kstatus: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, line)
	return 0
}
