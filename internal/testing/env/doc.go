// Package testenv starts the real components that rkms's integration tests run against: local-kms
// processes (one per simulated AWS KMS region), dynalite (a local DynamoDB) and Envoy.
//
// # Rules
//
//   - Every server listens on a free port of 127.0.0.1 and is stopped by t.Cleanup.
//   - Tests call [Integration] first. Under `go test -short` it skips them: that is the one switch
//     for a fast hermetic run. Without -short a missing tool is a test FAILURE, never a skip, so CI
//     cannot pass while silently testing less.
//   - Tools are found through environment variables first (RKMS_LOCAL_KMS, RKMS_DYNALITE,
//     RKMS_ENVOY), then where `make tools` installs them: $(go env GOPATH)/bin/local-kms,
//     .tools/node_modules/.bin/dynalite and .tools/venv/bin/envoy under the repository root.
//
// # Faults
//
// [KMS.Stop] and [Dynalite.Stop] kill the process (an outage); Start brings it back on the same port
// with the same data. [KMS.Stall] freezes the process with SIGSTOP so that it accepts connections
// but never answers, the nastiest failure a client can meet.
//
// # Import path
//
// The package lives in internal/testing/env, beside the other test and load rigs, but keeps its
// name testenv, so that importing it as github.com/rkms/rkms/internal/testing/env leaves every
// call site (testenv.Integration, testenv.StartKMS, ...) as it was.
package testenv
