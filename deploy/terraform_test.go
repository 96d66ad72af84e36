package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/keyring"
)

// TestTerraformPolicyMatchesRKMS keeps examples/terraform's IAM policy in step with what rkms
// sends KMS: the encryption context keys of every data key, and the breaker probe's context
// (without it a recovering region could never be probed back in). terraform itself is not
// available here; the files are also checked for balanced braces and brackets.
func TestTerraformPolicyMatchesRKMS(t *testing.T) {
	root := testenv.RepoRoot(t)
	dir := filepath.Join(root, "examples", "terraform")
	iam := readRepoFile(t, "examples/terraform/iam.tf")
	want := `values   = ["` + keyring.ContextKeyID + `", "` + keyring.ContextKeyVersion + `"]`
	if !strings.Contains(iam, want) {
		t.Errorf("iam.tf does not restrict kms:EncryptionContextKeys to %s", want)
	}
	for _, k := range []string{keyring.ContextKeyID, keyring.ContextKeyVersion} {
		if !strings.Contains(iam, `variable = "kms:EncryptionContext:`+k+`"`) {
			t.Errorf("iam.tf does not require the context key %s to be present", k)
		}
	}
	// The probe's context, as the keyring makes it.
	health := readRepoFile(t, "keyring/health.go")
	m := regexp.MustCompile(`probePurpose\s*=\s*"([^"]+)"`).FindStringSubmatch(health)
	if m == nil || !strings.Contains(health, `map[string]string{"rkms:purpose": probePurpose}`) {
		t.Fatal("keyring's probe context changed: update this test and examples/terraform/iam.tf")
	}
	if !strings.Contains(iam, `values   = ["rkms:purpose"]`) || !strings.Contains(iam, `values   = ["`+m[1]+`"]`) {
		t.Errorf("iam.tf does not allow the health probe's Encrypt with {\"rkms:purpose\": %q}", m[1])
	}
	for _, action := range []string{"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"} {
		if !strings.Contains(iam, `"`+action+`"`) {
			t.Errorf("iam.tf lacks %s", action)
		}
	}
	if regexp.MustCompile(`"(kms|dynamodb):\*"|"\*"`).MatchString(iam) {
		t.Error("iam.tf grants a wildcard")
	}

	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) < 5 {
		t.Fatalf("terraform files: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := balanced(string(b)); err != "" {
			t.Errorf("%s: %s", filepath.Base(f), err)
		}
		if strings.Contains(string(b), "\t") {
			t.Errorf("%s: tabs (terraform fmt indents with two spaces)", filepath.Base(f))
		}
	}
}

// balanced checks that braces, brackets and parentheses outside strings and comments pair up.
func balanced(src string) string {
	var stack []rune
	pairs := map[rune]rune{'}': '{', ']': '[', ')': '('}
	inStr := false
	for _, line := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		prev := rune(0)
		for _, c := range line {
			switch {
			case c == '"' && prev != '\\':
				inStr = !inStr
			case inStr:
			case c == '{' || c == '[' || c == '(':
				stack = append(stack, c)
			case pairs[c] != 0:
				if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
					return "unbalanced " + string(c)
				}
				stack = stack[:len(stack)-1]
			}
			prev = c
		}
	}
	if inStr || len(stack) > 0 {
		return "unclosed string or bracket"
	}
	return ""
}
