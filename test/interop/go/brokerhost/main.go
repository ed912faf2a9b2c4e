// brokerhost is a go-plugin 1.0.1 host that uses the broker both ways with a
// Worker plugin (test/interop/callback.proto). It is a test fixture.
//
// Usage: brokerhost [-versions 1,2] -- COMMAND [ARGS...]
//
// It starts COMMAND with AutoMTLS, offering the listed protocol versions
// (default 1), and dispenses "worker". It serves a Storage through the broker
// and calls Worker.Run with its id (the plugin writes through it and reads
// back), then calls Worker.Offer and dials the Storage the plugin serves in
// return, reads "offered" from it, and kills the plugin.
//
// Stdout carries exactly one JSON line:
//
//	{"runReadBack":"...","hostStored":"...","offered":"...","negotiatedVersion":1,"killMs":1.2}
//
// or {"error":"..."} with exit status 1. Logs go to stderr as hclog JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"gatehouse/callback"

	"gatehouse/fixture"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

const rpcTimeout = 15 * time.Second

var handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "GATEHOUSE_WORKER_PLUGIN",
	MagicCookieValue: "7c1d93e0-worker",
}

// hostStorage is the Storage the host serves through the broker.
type hostStorage struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (s *hostStorage) Put(_ context.Context, req *callback.PutRequest) (*callback.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[req.GetKey()] = append([]byte(nil), req.GetValue()...)
	return &callback.Empty{}, nil
}

func (s *hostStorage) Get(_ context.Context, req *callback.GetRequest) (*callback.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &callback.GetResponse{Value: s.data[req.GetKey()]}, nil
}

// dispensed is what the client half hands back: the Worker client and the broker.
type dispensed struct {
	worker callback.WorkerClient
	broker *plugin.GRPCBroker
}

type workerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (workerPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("brokerhost is the client side only")
}

func (workerPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &dispensed{worker: callback.NewWorkerClient(conn), broker: broker}, nil
}

type result struct {
	RunReadBack       string  `json:"runReadBack"`
	HostStored        string  `json:"hostStored"`
	Offered           string  `json:"offered"`
	NegotiatedVersion int     `json:"negotiatedVersion"`
	KillMs            float64 `json:"killMs"`
}

func parseVersions(list string) (map[int]plugin.PluginSet, error) {
	sets := make(map[int]plugin.PluginSet)
	for _, item := range strings.Split(list, ",") {
		version, err := strconv.Atoi(item)
		if err != nil || version < 1 {
			return nil, fmt.Errorf("bad version %q", item)
		}
		sets[version] = plugin.PluginSet{"worker": workerPlugin{}}
	}
	return sets, nil
}

// exercise runs both broker directions and fills in the result.
func exercise(client *plugin.Client, out *result) error {
	rpcClient, err := client.Client()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	raw, err := rpcClient.Dispense("worker")
	if err != nil {
		return fmt.Errorf("dispense worker: %w", err)
	}
	w := raw.(*dispensed)

	// Host -> plugin: the plugin calls back into a Storage the host serves.
	store := &hostStorage{data: make(map[string][]byte)}
	id := w.broker.NextId()
	go w.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		server := grpc.NewServer(opts...)
		callback.RegisterStorageServer(server, store)
		return server
	})
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	run, err := w.worker.Run(ctx, &callback.RunRequest{StorageId: id, Key: "secret", Value: []byte("from the go host")})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	out.RunReadBack = string(run.GetReadBack())
	store.mu.Lock()
	out.HostStored = string(store.data["secret"])
	store.mu.Unlock()

	// Plugin -> host: the host dials a Storage the plugin serves.
	offer, err := w.worker.Offer(ctx, &callback.Empty{})
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	conn, err := w.broker.Dial(offer.GetStorageId())
	if err != nil {
		return fmt.Errorf("dial broker id %d: %w", offer.GetStorageId(), err)
	}
	defer conn.Close()
	got, err := callback.NewStorageClient(conn).Get(ctx, &callback.GetRequest{Key: "offered"})
	if err != nil {
		return fmt.Errorf("get offered: %w", err)
	}
	out.Offered = string(got.GetValue())
	return nil
}

func main() {
	versions := flag.String("versions", "1", "comma-separated protocol versions to offer")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: brokerhost [-versions 1,2] -- COMMAND [ARGS...]")
	}
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		fixture.Fail(errors.New("usage: brokerhost [-versions 1,2] -- COMMAND [ARGS...]"))
	}
	sets, err := parseVersions(*versions)
	if err != nil {
		fixture.Fail(err)
	}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "brokerhost",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: sets,
		Cmd:              exec.Command(args[0], args[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     20 * time.Second,
		Logger:           logger,
	})

	var out result
	if err := exercise(client, &out); err != nil {
		client.Kill()
		fixture.Fail(err)
	}
	out.NegotiatedVersion = client.NegotiatedVersion()

	start := time.Now()
	client.Kill()
	out.KillMs = float64(time.Since(start).Microseconds()) / 1000
	fixture.WriteJSON(out)
}
