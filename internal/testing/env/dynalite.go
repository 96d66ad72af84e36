package testenv

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Dynalite is one dynalite process (a local DynamoDB) keeping its data on disk, so that a
// Stop/Start cycle (a store outage) loses nothing.
type Dynalite struct {
	Endpoint string // http://127.0.0.1:PORT
	proc     *process
}

// StartDynalite starts dynalite on a free loopback port with a fresh on-disk data directory; new
// tables are ACTIVE at once. The process is killed at test cleanup.
func StartDynalite(t testing.TB) *Dynalite {
	t.Helper()
	bin := tool(t, "RKMS_DYNALITE", "dynalite",
		filepath.Join(RepoRoot(t), ".tools", "node_modules", ".bin", "dynalite"))
	dir := t.TempDir()
	d := &Dynalite{}
	var port int
	d.proc = &process{t: t, name: "dynalite", logs: &LockedBuffer{Limit: 1 << 20},
		build: func() *exec.Cmd {
			cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
				"--path", dir, "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
			cmd.Env = ProcessEnv(nil, "AWS_REGION=us-east-1")
			return cmd
		}}
	for attempt := 0; ; attempt++ {
		port = FreePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		d.proc.ready = awsJSONReady("http://"+addr, "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0", "MissingAuthenticationToken")
		d.Endpoint = "http://" + addr
		if attempt == 2 {
			d.proc.start()
			break
		}
		if d.proc.tryStart() {
			break
		}
	}
	t.Cleanup(d.proc.stop)
	return d
}

// Stop kills the process: the store refuses connections. Data on disk is kept. Idempotent.
func (d *Dynalite) Stop() { d.proc.stop() }

// Start starts it again on the same port and data, or resumes it after [Dynalite.Stall].
func (d *Dynalite) Start() { d.proc.start() }

// Stall freezes the process: connections are accepted but never answered.
func (d *Dynalite) Stall() { d.proc.stall() }

// Output returns the process's recent output.
func (d *Dynalite) Output() string { return d.proc.Output() }
