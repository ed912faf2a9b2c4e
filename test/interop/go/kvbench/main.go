// kvbench is the go-plugin 1.0.1 side of `npm run bench`: a host that runs
// the same KV workloads as bench/gatehouse-host.ts, so that the bench can put
// gatehouse and go-plugin side by side within one run.
//
// Usage:
//
//	kvbench workload [-launches N] [-seconds S] [-big-seconds S] [-warmup-seconds S] -- COMMAND [ARGS...]
//	kvbench live [-n N] -- COMMAND [ARGS...]
//	kvbench certs [-n N]
//
// workload: N launches to first response (NewClient to a Put and a Get
// answered, then Kill, untimed), after one more that is reported apart as
// the process's first, then on one launched plugin unary Gets of a
// 64-byte value at concurrency 1 and 16 for S seconds each, then Put and Get
// of a 1 MiB value for S seconds.
// live: the host's RSS and open file descriptors before and after starting N
// plugins (each answered one Get), for the cost per live plugin.
// certs: N P-521 self-signed certificates shaped like AutoMTLS's, the
// certificate a go-plugin host makes per launch.
//
// Stdout carries exactly one JSON object; errors go to stderr with exit 1.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"math/big"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gatehouse/kv"

	"gatehouse/fixture"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

const (
	rpcTimeout    = 15 * time.Second
	smallValueLen = 64
	bigValueLen   = 1 << 20
)

// warmup runs before each measured phase, the same shape as the phase, so
// that connection windows and buffers have settled; -warmup-seconds sets it.
var warmup = 200 * time.Millisecond

// launched is one running plugin and its KV client.
type launched struct {
	client *plugin.Client
	kv     kv.KVClient
}

// launch starts the plugin the way a go-plugin host usually does: AutoMTLS,
// gRPC only, and a logger that parses the plugin's stderr but writes nothing,
// as gatehouse's silent default logger does.
func launch(command []string) (*launched, error) {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  fixture.KVHandshake,
		Plugins:          plugin.PluginSet{"kv": fixture.KVClientPlugin{}},
		Cmd:              exec.Command(command[0], command[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     20 * time.Second,
		Logger:           hclog.NewNullLogger(),
	})
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("connect: %w", err)
	}
	raw, err := rpcClient.Dispense("kv")
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("dispense: %w", err)
	}
	kvClient, ok := raw.(kv.KVClient)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("dispense: unexpected type %T", raw)
	}
	return &launched{client: client, kv: kvClient}, nil
}

func (l *launched) put(key string, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	_, err := l.kv.Put(ctx, &kv.PutRequest{Key: key, Value: value})
	return err
}

func (l *launched) get(key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := l.kv.Get(ctx, &kv.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.GetValue(), nil
}

func ms(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / 1e6
}

// launchLoop times spawn to the first Put and Get answered, n+1 times. The
// first launch of the process is returned apart: it pays one-time set-up
// (for gatehouse, loading its certificate library), the others are a
// long-running host's cost per launch.
func launchLoop(command []string, n int) (float64, []float64, error) {
	value := bytes.Repeat([]byte{'v'}, smallValueLen)
	times := make([]float64, 0, n+1)
	for i := 0; i <= n; i++ {
		start := time.Now()
		p, err := launch(command)
		if err != nil {
			return 0, nil, err
		}
		if err := p.put("k", value); err != nil {
			p.client.Kill()
			return 0, nil, fmt.Errorf("put: %w", err)
		}
		if _, err := p.get("k"); err != nil {
			p.client.Kill()
			return 0, nil, fmt.Errorf("get: %w", err)
		}
		times = append(times, ms(time.Since(start)))
		p.client.Kill()
	}
	return times[0], times[1:], nil
}

type unaryResult struct {
	Concurrency int     `json:"concurrency"`
	Calls       int     `json:"calls"`
	Seconds     float64 `json:"seconds"`
	CallsPerSec float64 `json:"callsPerSec"`
	P50Us       float64 `json:"p50Us"`
	P99Us       float64 `json:"p99Us"`
}

// percentile is the nearest-rank percentile of sorted, the same rule as bench/stats.ts.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

// runFor calls op from `concurrency` goroutines until the duration is over,
// after a warm-up of the same shape, and returns every call's latency in µs.
func runFor(concurrency int, duration time.Duration, op func() error) ([]float64, time.Duration, error) {
	var (
		mu        sync.Mutex
		latencies []float64
		firstErr  error
	)
	phase := func(d time.Duration, record bool) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		deadline := start.Add(d)
		for w := 0; w < concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]float64, 0, 4096)
				for time.Now().Before(deadline) {
					callStart := time.Now()
					if err := op(); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					local = append(local, float64(time.Since(callStart).Nanoseconds())/1e3)
				}
				if record {
					mu.Lock()
					latencies = append(latencies, local...)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	phase(warmup, false)
	elapsed := phase(duration, true)
	return latencies, elapsed, firstErr
}

func unary(p *launched, concurrency int, duration time.Duration) (unaryResult, error) {
	latencies, elapsed, err := runFor(concurrency, duration, func() error {
		_, err := p.get("small")
		return err
	})
	if err != nil {
		return unaryResult{}, fmt.Errorf("get at concurrency %d: %w", concurrency, err)
	}
	sort.Float64s(latencies)
	return unaryResult{
		Concurrency: concurrency,
		Calls:       len(latencies),
		Seconds:     elapsed.Seconds(),
		CallsPerSec: float64(len(latencies)) / elapsed.Seconds(),
		P50Us:       percentile(latencies, 50),
		P99Us:       percentile(latencies, 99),
	}, nil
}

type bigResult struct {
	ValueBytes int     `json:"valueBytes"`
	Rounds     int     `json:"rounds"`
	Seconds    float64 `json:"seconds"`
	MBPerSec   float64 `json:"mbPerSec"`
}

// bigValues moves a 1 MiB value up (Put) and back (Get) per round; MB/s counts both.
func bigValues(p *launched, duration time.Duration) (bigResult, error) {
	value := bytes.Repeat([]byte{'b'}, bigValueLen)
	rounds, elapsed, err := runFor(1, duration, func() error {
		if err := p.put("big", value); err != nil {
			return err
		}
		got, err := p.get("big")
		if err == nil && len(got) != bigValueLen {
			err = fmt.Errorf("got %d bytes back", len(got))
		}
		return err
	})
	if err != nil {
		return bigResult{}, fmt.Errorf("1 MiB round: %w", err)
	}
	moved := float64(len(rounds)) * 2 * bigValueLen
	return bigResult{
		ValueBytes: bigValueLen,
		Rounds:     len(rounds),
		Seconds:    elapsed.Seconds(),
		MBPerSec:   moved / 1e6 / elapsed.Seconds(),
	}, nil
}

func workload(args []string) (interface{}, error) {
	flags := flag.NewFlagSet("workload", flag.ExitOnError)
	launches := flags.Int("launches", 20, "launches to first response")
	seconds := flags.Float64("seconds", 2, "seconds per unary concurrency level")
	bigSeconds := flags.Float64("big-seconds", 2, "seconds of 1 MiB rounds")
	warmupSeconds := flags.Float64("warmup-seconds", 0.2, "seconds of warm-up before each measured phase")
	flags.Parse(args)
	warmup = time.Duration(*warmupSeconds * float64(time.Second))
	command := flags.Args()
	if len(command) == 0 {
		return nil, errors.New("workload: no plugin command after --")
	}

	firstLaunchMs, launchMs, err := launchLoop(command, *launches)
	if err != nil {
		return nil, err
	}

	p, err := launch(command)
	if err != nil {
		return nil, err
	}
	defer p.client.Kill()
	if err := p.put("small", bytes.Repeat([]byte{'s'}, smallValueLen)); err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	duration := time.Duration(*seconds * float64(time.Second))
	var results []unaryResult
	for _, concurrency := range []int{1, 16} {
		result, err := unary(p, concurrency, duration)
		if err != nil {
			return nil, err
		}
		results = append(results, result)
	}
	bigRun, err := bigValues(p, time.Duration(*bigSeconds*float64(time.Second)))
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{"firstLaunchMs": firstLaunchMs, "launchMs": launchMs, "unary": results, "big": bigRun}, nil
}

// selfUsage reads this process's resident set and its open descriptors.
func selfUsage() (rssBytes int64, fds int, err error) {
	status, err := ioutil.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				kb, err := strconv.ParseInt(fields[1], 10, 64)
				if err != nil {
					return 0, 0, err
				}
				rssBytes = kb * 1024
			}
		}
	}
	entries, err := ioutil.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0, err
	}
	return rssBytes, len(entries), nil
}

// settled collects garbage and returns freed memory to the OS first, so
// that the reading is of live memory only (the Node side runs gc() too).
func settled() (int64, int, error) {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(100 * time.Millisecond)
	return selfUsage()
}

func live(args []string) (interface{}, error) {
	flags := flag.NewFlagSet("live", flag.ExitOnError)
	n := flags.Int("n", 10, "plugins kept running at once")
	flags.Parse(args)
	command := flags.Args()
	if len(command) == 0 {
		return nil, errors.New("live: no plugin command after --")
	}
	// One launch first, so that lazily initialised state (TLS, gRPC) is in the baseline.
	warm, err := launch(command)
	if err != nil {
		return nil, err
	}
	if err := warm.put("k", []byte("v")); err != nil {
		warm.client.Kill()
		return nil, err
	}
	warm.client.Kill()

	rssBefore, fdsBefore, err := settled()
	if err != nil {
		return nil, err
	}
	plugins := make([]*launched, 0, *n)
	defer func() {
		for _, p := range plugins {
			p.client.Kill()
		}
	}()
	for i := 0; i < *n; i++ {
		p, err := launch(command)
		if err != nil {
			return nil, err
		}
		plugins = append(plugins, p)
		if err := p.put("k", []byte("v")); err != nil {
			return nil, err
		}
	}
	rssAfter, fdsAfter, err := settled()
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{
		"plugins":   *n,
		"rssBefore": rssBefore,
		"rssAfter":  rssAfter,
		"fdsBefore": fdsBefore,
		"fdsAfter":  fdsAfter,
	}, nil
}

// autoMTLSCertificate makes what a go-plugin 1.0.1 host makes per launch with
// AutoMTLS: a P-521 key and a self-signed CA certificate for localhost with
// both extended key usages, as PEM.
func autoMTLSCertificate() ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"gatehouse bench"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.Add(262980 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDer, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDer})
	return certPEM, keyPEM, nil
}

func certs(args []string) (interface{}, error) {
	flags := flag.NewFlagSet("certs", flag.ExitOnError)
	n := flags.Int("n", 50, "certificates")
	flags.Parse(args)
	times := make([]float64, 0, *n)
	for i := 0; i < *n; i++ {
		start := time.Now()
		if _, _, err := autoMTLSCertificate(); err != nil {
			return nil, err
		}
		times = append(times, ms(time.Since(start)))
	}
	return map[string]interface{}{"curve": "P-521", "ms": times}, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kvbench workload|live|certs [flags] [-- COMMAND ARGS...]")
		os.Exit(2)
	}
	var (
		result interface{}
		err    error
	)
	switch os.Args[1] {
	case "workload":
		result, err = workload(os.Args[2:])
	case "live":
		result, err = live(os.Args[2:])
	case "certs":
		result, err = certs(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvbench:", err)
		os.Exit(1)
	}
	line, err := json.Marshal(result)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvbench:", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(line, '\n'))
}
