package config

import (
	"os"
	"strings"
)

// AdminTokenEnv names the environment variable whose value, when set, is the admin token and
// overrides admin.token_file.
const AdminTokenEnv = "RKMS_ADMIN_TOKEN"

// EnvAdminToken returns the admin token that the environment sets ([AdminTokenEnv], surrounding
// white space removed), or "" when it sets none. It is the one place that reads the variable:
// the check that a token source exists, the token reader and the start-up banner all call it.
func EnvAdminToken() string { return strings.TrimSpace(os.Getenv(AdminTokenEnv)) }
