// kvhost is a go-plugin 1.0.1 host used as an interop test fixture.
//
// Usage: kvhost [-reattach-test] -- COMMAND [ARGS...]
//
// It starts COMMAND as a gRPC plugin with AutoMTLS, dispenses "kv", does
// Put("hello", "world") and Get("hello"), then Kill()s the plugin and times
// the Kill. With -reattach-test it also connects a second client to the
// running plugin through ReattachConfig (reusing the first client's mTLS
// configuration) and reads the key back through it before the Kill.
//
// Stdout carries exactly one JSON line:
//
//	{"put":"ok","get":"world","killMs":12.3,"negotiatedVersion":1}
//
// or {"error":"..."} with exit status 1. Everything else (hclog output of
// the host, and the plugin's stderr as re-logged by go-plugin) goes to
// stderr as JSON lines.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"gatehouse/kv"

	"gatehouse/fixture"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

const rpcTimeout = 15 * time.Second

func pluginSet() plugin.PluginSet {
	return plugin.PluginSet{"kv": fixture.KVClientPlugin{}}
}

type result struct {
	Put               string  `json:"put"`
	Get               string  `json:"get"`
	ReattachGet       *string `json:"reattachGet,omitempty"`
	KillMs            float64 `json:"killMs"`
	NegotiatedVersion int     `json:"negotiatedVersion"`
}

// dispenseKV connects a started (or reattached) client and dispenses "kv".
func dispenseKV(client *plugin.Client) (kv.KVClient, plugin.ClientProtocol, error) {
	rpcClient, err := client.Client()
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	raw, err := rpcClient.Dispense("kv")
	if err != nil {
		return nil, nil, fmt.Errorf("dispense kv: %w", err)
	}
	kvClient, ok := raw.(kv.KVClient)
	if !ok {
		return nil, nil, fmt.Errorf("dispense kv: unexpected type %T", raw)
	}
	return kvClient, rpcClient, nil
}

func get(kvClient kv.KVClient, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := kvClient.Get(ctx, &kv.GetRequest{Key: key})
	if err != nil {
		return "", err
	}
	return string(resp.GetValue()), nil
}

// reattachGet reads key through a second client reattached to the running
// plugin. It only closes that client's connection: GRPCClient.Close would
// send Shutdown and stop the plugin under the first client.
func reattachGet(first *plugin.Client, tlsConfig *tls.Config, logger hclog.Logger, key string) (string, error) {
	reattach := first.ReattachConfig()
	if reattach == nil {
		return "", errors.New("reattach: no reattach config")
	}
	second := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  fixture.KVHandshake,
		Plugins:          pluginSet(),
		Reattach:         reattach,
		TLSConfig:        tlsConfig,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger.Named("reattach"),
	})
	kvClient, rpcClient, err := dispenseKV(second)
	if err != nil {
		return "", fmt.Errorf("reattach: %w", err)
	}
	defer func() {
		if grpcClient, ok := rpcClient.(*plugin.GRPCClient); ok {
			grpcClient.Conn.Close()
		}
	}()
	value, err := get(kvClient, key)
	if err != nil {
		return "", fmt.Errorf("reattach get: %w", err)
	}
	return value, nil
}

func main() {
	reattachTest := flag.Bool("reattach-test", false, "also read the key back through a client reattached to the running plugin")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kvhost [-reattach-test] -- COMMAND [ARGS...]")
	}
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		fixture.Fail(errors.New("usage: kvhost [-reattach-test] -- COMMAND [ARGS...]"))
	}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "kvhost",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})

	config := &plugin.ClientConfig{
		HandshakeConfig:  fixture.KVHandshake,
		Plugins:          pluginSet(),
		Cmd:              exec.Command(args[0], args[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     20 * time.Second,
		Logger:           logger,
	}
	client := plugin.NewClient(config)

	// Any failure after this point must not leave the plugin running.
	failAndKill := func(err error) {
		client.Kill()
		fixture.Fail(err)
	}

	kvClient, _, err := dispenseKV(client)
	if err != nil {
		failAndKill(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	_, err = kvClient.Put(ctx, &kv.PutRequest{Key: "hello", Value: []byte("world")})
	cancel()
	if err != nil {
		failAndKill(fmt.Errorf("put: %w", err))
	}

	value, err := get(kvClient, "hello")
	if err != nil {
		failAndKill(fmt.Errorf("get: %w", err))
	}

	out := result{
		Put:               "ok",
		Get:               value,
		NegotiatedVersion: client.NegotiatedVersion(),
	}

	if *reattachTest {
		// After Start, config.TLSConfig holds the client certificate and the
		// plugin's certificate as the only root: exactly what a reattaching
		// client needs, since 1.0.1 does not negotiate mTLS on reattach.
		again, err := reattachGet(client, config.TLSConfig, logger, "hello")
		if err != nil {
			failAndKill(err)
		}
		out.ReattachGet = &again
	}

	start := time.Now()
	client.Kill()
	out.KillMs = float64(time.Since(start).Microseconds()) / 1000

	if !client.Exited() {
		fixture.Fail(errors.New("plugin process still running after Kill"))
	}

	fixture.WriteJSON(out)
}
