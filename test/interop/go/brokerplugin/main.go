// brokerplugin is a go-plugin 1.0.1 gRPC plugin that uses the broker both ways
// (test/interop/callback.proto): Worker.Run dials a Storage the host serves
// through the broker, Worker.Offer serves a Storage of its own for the host to
// dial. It is a test fixture for gatehouse's host-side broker.
//
// It speaks two protocol versions: version 1 serves Worker; version 2 serves
// Worker and, on the main connection, a Storage holding "version" = "2".
package main

import (
	"context"
	"os"
	"sync"

	"gatehouse/callback"
	"gatehouse/fixture"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// handshake must match the host's configuration; the versions are in main.
var handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "GATEHOUSE_WORKER_PLUGIN",
	MagicCookieValue: "7c1d93e0-worker",
}

// memoryStorage is a Storage backed by a map.
type memoryStorage struct {
	mu   sync.Mutex
	data map[string][]byte
}

func newMemoryStorage(initial map[string]string) *memoryStorage {
	s := &memoryStorage{data: make(map[string][]byte)}
	for k, v := range initial {
		s.data[k] = []byte(v)
	}
	return s
}

func (s *memoryStorage) Put(_ context.Context, req *callback.PutRequest) (*callback.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[req.GetKey()] = append([]byte(nil), req.GetValue()...)
	return &callback.Empty{}, nil
}

func (s *memoryStorage) Get(_ context.Context, req *callback.GetRequest) (*callback.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &callback.GetResponse{Value: s.data[req.GetKey()]}, nil
}

// worker implements Worker with the broker it was registered with.
type worker struct {
	logger hclog.Logger
	broker *plugin.GRPCBroker
}

func (w *worker) Run(ctx context.Context, req *callback.RunRequest) (*callback.RunResponse, error) {
	conn, err := w.broker.Dial(req.GetStorageId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial broker id %d: %v", req.GetStorageId(), err)
	}
	defer conn.Close()
	hostStorage := callback.NewStorageClient(conn)
	if _, err := hostStorage.Put(ctx, &callback.PutRequest{Key: req.GetKey(), Value: req.GetValue()}); err != nil {
		return nil, status.Errorf(codes.Internal, "put through the host: %v", err)
	}
	got, err := hostStorage.Get(ctx, &callback.GetRequest{Key: req.GetKey()})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "get through the host: %v", err)
	}
	w.logger.Info("called back into the host", "storage_id", req.GetStorageId(), "key", req.GetKey())
	return &callback.RunResponse{ReadBack: got.GetValue()}, nil
}

func (w *worker) Offer(context.Context, *callback.Empty) (*callback.OfferResponse, error) {
	id := w.broker.NextId()
	offered := newMemoryStorage(map[string]string{"offered": "by the plugin"})
	go w.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		server := grpc.NewServer(opts...)
		callback.RegisterStorageServer(server, offered)
		return server
	})
	return &callback.OfferResponse{StorageId: id}, nil
}

type workerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	logger hclog.Logger
}

func (p *workerPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	// BROKERPLUGIN_STOCK_BROKER_TLS=1 leaves go-plugin 1.0.1's broker as it is, as a plugin built
	// from go-plugin's examples has it: its Dial then cannot verify the host (hashicorp/go-plugin#109).
	if os.Getenv("BROKERPLUGIN_STOCK_BROKER_TLS") != "1" {
		fixture.CompleteBrokerTLS(broker)
	}
	callback.RegisterWorkerServer(s, &worker{logger: p.logger, broker: broker})
	return nil
}

func (p *workerPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, status.Error(codes.Unimplemented, "brokerplugin is the server side only")
}

// versionPlugin serves a Storage on the main connection, only in version 2.
type versionPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (versionPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	callback.RegisterStorageServer(s, newMemoryStorage(map[string]string{"version": "2"}))
	return nil
}

func (versionPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, status.Error(codes.Unimplemented, "brokerplugin is the server side only")
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "brokerplugin",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			1: {"worker": &workerPlugin{logger: logger}},
			2: {"worker": &workerPlugin{logger: logger}, "version": versionPlugin{}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
