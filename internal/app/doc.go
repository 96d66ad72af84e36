// Package app is the rkms command: it parses the command line, loads the configuration, wires the
// keyring, the store, the KMS regions, the ext_proc server and the admin API together, and runs
// them until it is told to stop. cmd/rkms only calls [Main].
//
// # Commands
//
//	rkms serve [--config FILE]   run (embedded defaults without --config)
//	rkms config check FILE       report every problem in FILE, with its line
//	rkms version                 print the version
package app
