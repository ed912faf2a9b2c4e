// kvplugin is a go-plugin 1.0.1 gRPC plugin serving the KV service from an
// in-memory map. It is a test fixture: the interop tests start it from a
// gatehouse host (and from the kvhost fixture) to prove wire compatibility.
//
// It logs through hclog in JSON to the process's original stderr, which is
// what go-plugin hosts parse, so hosts can be tested against real hclog lines.
package main

import (
	"context"
	"flag"
	"os"
	"sync"

	"gatehouse/kv"

	"gatehouse/fixture"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// store is the KV service implementation.
type store struct {
	logger hclog.Logger
	mu     sync.Mutex
	data   map[string][]byte
}

func (s *store) Get(_ context.Context, req *kv.GetRequest) (*kv.GetResponse, error) {
	s.mu.Lock()
	value, ok := s.data[req.GetKey()]
	s.mu.Unlock()
	s.logger.Debug("get", "key", req.GetKey(), "found", ok)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "key not found: %q", req.GetKey())
	}
	return &kv.GetResponse{Value: value}, nil
}

func (s *store) Put(_ context.Context, req *kv.PutRequest) (*kv.Empty, error) {
	stored := make([]byte, len(req.GetValue()))
	copy(stored, req.GetValue())
	s.mu.Lock()
	s.data[req.GetKey()] = stored
	s.mu.Unlock()
	s.logger.Info("put", "key", req.GetKey(), "bytes", len(stored))
	return &kv.Empty{}, nil
}

// kvPlugin registers the store on go-plugin's gRPC server. It serves only;
// the host fixture has its own client-side half.
type kvPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl *store
}

func (p *kvPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	kv.RegisterKVServer(s, p.impl)
	return nil
}

func (p *kvPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, status.Error(codes.Unimplemented, "kvplugin is the server side only")
}

func main() {
	// -reflection: serve grpc-go's reflection service, as go-plugin >= 1.2 does by default.
	withReflection := flag.Bool("reflection", false, "serve gRPC server reflection")
	flag.Parse()
	grpcServer := plugin.DefaultGRPCServer
	if *withReflection {
		grpcServer = func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(opts...)
			reflection.Register(s)
			return s
		}
	}

	// Capture the real stderr now: plugin.Serve replaces os.Stderr with a
	// pipe that nothing reads in go-plugin 1.0.1's gRPC mode.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "kvplugin",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})

	impl := &store{logger: logger, data: make(map[string][]byte)}

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: fixture.KVHandshake,
		Plugins: plugin.PluginSet{
			"kv": &kvPlugin{impl: impl},
		},
		GRPCServer: grpcServer,
		Logger:     logger,
	})
}
