package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// KMS is one local-kms process simulating AWS KMS in one region.
type KMS struct {
	Region   string
	Endpoint string // http://127.0.0.1:PORT
	KeyID    string // the seeded symmetric key's id
	KeyARN   string // its ARN in this region
	proc     *process
}

const testAccount = "111122223333"

// StartKMS starts local-kms for region on a free loopback port, with its own data directory and a
// freshly seeded AES key (random backing key). The process is killed at test cleanup.
func StartKMS(t testing.TB, region string) *KMS {
	t.Helper()
	return StartKMSTee(t, region, nil)
}

// StartKMSTee is [StartKMS] with the process's output also written to tee (when not nil), whole
// and unbounded: for counting what the emulator logs per request (the scale simulation counts
// its "Decryption called" lines).
func StartKMSTee(t testing.TB, region string, tee io.Writer) *KMS {
	t.Helper()
	bin := tool(t, "RKMS_LOCAL_KMS", "local-kms", filepath.Join(gopathBin(t), "local-kms"))
	dir := t.TempDir()
	keyID := fmt.Sprintf("0000%04d-0000-4000-8000-%012d", regionNumber(region), regionNumber(region))
	backing := make([]byte, 32)
	if _, err := rand.Read(backing); err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf(`Keys:
  Symmetric:
    Aes:
      - Metadata:
          KeyId: %s
          Description: "rkms test key %s"
        BackingKeys:
          - %s
Aliases:
  - AliasName: alias/rkms
    TargetKeyId: %s
`, keyID, region, hex.EncodeToString(backing), keyID)
	seedPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	dataPath := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataPath, 0o700); err != nil {
		t.Fatal(err)
	}
	k := &KMS{Region: region, KeyID: keyID,
		KeyARN: fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, testAccount, keyID)}
	var port int
	k.proc = &process{t: t, name: "local-kms " + region, logs: &LockedBuffer{Limit: 1 << 20}, tee: tee,
		build: func() *exec.Cmd {
			cmd := exec.Command(bin)
			cmd.Dir = dir
			cmd.Env = ProcessEnv(nil, "AWS_REGION=us-east-1", "PORT="+strconv.Itoa(port), "KMS_REGION="+region,
				"KMS_ACCOUNT_ID="+testAccount, "KMS_SEED_PATH="+seedPath, "KMS_DATA_PATH="+dataPath)
			return cmd
		}}
	// A port can be taken between FreePort and the bind (local-kms panics then): retry with new
	// ports. local-kms binds every address, so a port free on 127.0.0.1 can still be in use as
	// another loopback address's port (the abuse tests' attackers connect from 127.0.0.2 and
	// 127.0.0.3 by the thousand): hence several attempts.
	for attempt := 0; ; attempt++ {
		port = FreePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		k.proc.ready = awsJSONReady("http://"+addr, "TrentService.ListKeys", "application/x-amz-json-1.1", `"Keys"`)
		k.Endpoint = "http://" + addr
		if attempt == 5 {
			k.proc.start()
			break
		}
		if k.proc.tryStart() {
			break
		}
	}
	t.Cleanup(k.proc.stop)
	return k
}

// regionNumber maps a region name to a small stable number used to make distinct key ids.
func regionNumber(region string) int {
	n := 0
	for _, c := range region {
		n = (n*31 + int(c)) % 10000
	}
	return n
}

// Stop kills the process: from now on the region refuses connections. Idempotent.
func (k *KMS) Stop() { k.proc.stop() }

// Start starts the process again on the same port with the same data and key, or resumes it after
// [KMS.Stall]. It returns once the region accepts connections.
func (k *KMS) Start() { k.proc.start() }

// Stall freezes the process (SIGSTOP): connections are accepted by the kernel but never answered.
// [KMS.Start] resumes it; cleanup kills it either way.
func (k *KMS) Stall() { k.proc.stall() }

// Output returns the process's recent output, for failure messages.
func (k *KMS) Output() string { return k.proc.Output() }
