package deploy

import (
	"regexp"
	"strings"
	"testing"
)

// TestGeneratedCodePins: the committed gRPC code was made by the generator versions the Makefile
// pins (make generate), from the proto file that is committed beside it.
func TestGeneratedCodePins(t *testing.T) {
	mk := readRepoFile(t, "Makefile")
	pin := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:=\s*(\S+)$`).FindStringSubmatch(mk)
		if m == nil {
			t.Fatalf("Makefile does not pin %s", name)
		}
		return m[1]
	}
	pb := readRepoFile(t, "api/rkms/v1/keys.pb.go")
	grpc := readRepoFile(t, "api/rkms/v1/keys_grpc.pb.go")
	for _, c := range []struct{ file, text, want string }{
		{"keys.pb.go", pb, "// \tprotoc-gen-go " + pin("PROTOC_GEN_GO_VERSION")},
		{"keys.pb.go", pb, "// \tprotoc        v" + pin("PROTOC_VERSION")},
		{"keys_grpc.pb.go", grpc, "// - protoc-gen-go-grpc " + pin("PROTOC_GEN_GO_GRPC_VERSION")},
		{"keys_grpc.pb.go", grpc, "// source: rkms/v1/keys.proto"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s lacks %q: run make generate", c.file, c.want)
		}
	}
	proto := readRepoFile(t, "proto/rkms/v1/keys.proto")
	for _, rpc := range regexp.MustCompile(`rpc (\w+)\(`).FindAllStringSubmatch(proto, -1) {
		if !strings.Contains(grpc, "KeyService_"+rpc[1]+"_FullMethodName") {
			t.Errorf("generated code lacks rpc %s: run make generate", rpc[1])
		}
	}
}
