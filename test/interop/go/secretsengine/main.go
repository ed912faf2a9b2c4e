// secretsengine is a secrets engine for the gatehouse secrets server written in Go against
// go-plugin 1.0.1 (examples/secrets-server/engine.proto): it proves that any go-plugin engine mounts.
// A write stores the request body under the path in the storage the server offers over the broker;
// a read returns it; "info" names the engine.
package main

import (
	"context"
	"encoding/json"
	"os"
	"sync"

	"gatehouse/fixture"
	"gatehouse/secrets"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// handshake must match examples/secrets-server/protocol.ts's ENGINE_COOKIE.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "GATEHOUSE_SECRETS_ENGINE",
	MagicCookieValue: "b5d0a2c4-secrets-engine-v1",
}

type engine struct {
	broker  *plugin.GRPCBroker
	mu      sync.Mutex
	storage map[uint32]secrets.StorageClient
}

// storageFor dials the server's storage once per broker id and keeps the connection.
func (e *engine) storageFor(id uint32) (secrets.StorageClient, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if client, ok := e.storage[id]; ok {
		return client, nil
	}
	conn, err := e.broker.Dial(id)
	if err != nil {
		return nil, err
	}
	client := secrets.NewStorageClient(conn)
	e.storage[id] = client
	return client, nil
}

func reply(code uint32, v interface{}) (*secrets.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &secrets.Response{Status: code, Body: body}, nil
}

func (e *engine) Handle(ctx context.Context, req *secrets.Request) (*secrets.Response, error) {
	if req.GetPath() == "info" {
		return reply(200, map[string]interface{}{"data": map[string]string{"engine": "go", "version": "1.0.0"}})
	}
	store, err := e.storageFor(req.GetStorageId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial the server's storage: %v", err)
	}
	switch req.GetOperation() {
	case "write":
		if _, err := store.Put(ctx, &secrets.Entry{Key: req.GetPath(), Value: req.GetBody()}); err != nil {
			return nil, err
		}
		return reply(200, map[string]interface{}{"data": map[string]bool{"stored": true}})
	case "read":
		got, err := store.Get(ctx, &secrets.Key{Key: req.GetPath()})
		if err != nil {
			return nil, err
		}
		if !got.GetFound() {
			return reply(404, map[string]interface{}{"code": "not_found", "errors": []string{"go engine: nothing at " + req.GetPath()}})
		}
		var stored interface{}
		if err := json.Unmarshal(got.GetValue(), &stored); err != nil {
			return nil, err
		}
		return reply(200, map[string]interface{}{"data": stored, "engine": "go"})
	}
	return reply(405, map[string]interface{}{"code": "unsupported_operation", "errors": []string{"go engine: " + req.GetOperation()}})
}

type enginePlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (enginePlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	fixture.CompleteBrokerTLS(broker)
	secrets.RegisterEngineServer(s, &engine{broker: broker, storage: make(map[uint32]secrets.StorageClient)})
	return nil
}

func (enginePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, status.Error(codes.Unimplemented, "secretsengine is the server side only")
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{Name: "secretsengine", Level: hclog.Info, Output: os.Stderr, JSONFormat: true})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{"engine": enginePlugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}
