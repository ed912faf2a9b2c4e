// grpcpeer is a plain grpc-go server (no go-plugin) for the lean client's
// conformance tests against grpc-go: it serves kv.KV on a unix
// socket, without TLS, and answers Get by its key:
//
//	"fail"   FailedPrecondition with a message that needs percent-encoding,
//	         before any message (a trailers-only response)
//	"hang"   reports {"started":true} on stdout, waits for the call's context
//	         to end, then reports {"cancelled":true,"deadline":<whether
//	         grpc-timeout arrived>} and answers a second later (lateAnswer)
//	"meta"   echoes x-text into a header and x-bin into a trailer
//	"big:N"  a value of N bytes
//	other    the key itself, as the value
//
// It also serves stream.S, described by hand below (no generated code), whose
// messages are kv's GetRequest and GetResponse:
//
//	Count  (server stream) key "N": N values of 8 KiB, each starting with its
//	       index (4 bytes, big-endian), then OK; "N:fail": the same, then
//	       FailedPrecondition "failed after N"; "hang": reports {"started":true},
//	       waits for the call's context to end, then reports
//	       {"cancelled":true,"deadline":<whether grpc-timeout arrived>} and
//	       answers a second later
//	Echo   (bidi) each request's key back as a value, until the requests end
//
// Usage: grpcpeer -socket PATH. It prints "listening" once it accepts calls,
// and stops on SIGTERM with GracefulStop (a GOAWAY to every connection).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gatehouse/kv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type server struct {
	kv.UnimplementedKVServer
}

// lateAnswer holds a call whose context has ended before it answers: grpc-go
// 1.33 would otherwise send the handler's ctx.Err() as UNKNOWN, racing the
// client's own deadline, while what is under test is that the client ends
// the call by itself.
func lateAnswer() {
	time.Sleep(time.Second)
}

func report(v map[string]interface{}) {
	line, _ := json.Marshal(v)
	os.Stdout.Write(append(line, '\n'))
}

func (server) Get(ctx context.Context, req *kv.GetRequest) (*kv.GetResponse, error) {
	key := req.GetKey()
	switch {
	case key == "fail":
		return nil, status.Error(codes.FailedPrecondition, "naïve 100% wrong\nsecond line")
	case key == "hang":
		_, hasDeadline := ctx.Deadline()
		report(map[string]interface{}{"started": true})
		<-ctx.Done()
		report(map[string]interface{}{"cancelled": true, "deadline": hasDeadline})
		lateAnswer()
		return nil, ctx.Err()
	case key == "meta":
		in, _ := metadata.FromIncomingContext(ctx)
		text := ""
		if values := in.Get("x-text"); len(values) > 0 {
			text = values[0]
		}
		bin := ""
		if values := in.Get("x-bin"); len(values) > 0 {
			bin = values[0]
		}
		if err := grpc.SetHeader(ctx, metadata.Pairs("echo-text", text)); err != nil {
			return nil, err
		}
		grpc.SetTrailer(ctx, metadata.Pairs("echo-bin", bin))
		return &kv.GetResponse{Value: []byte("ok")}, nil
	case strings.HasPrefix(key, "big:"):
		n, err := strconv.Atoi(strings.TrimPrefix(key, "big:"))
		if err != nil || n < 0 {
			return nil, status.Error(codes.InvalidArgument, "big:N needs a size")
		}
		return &kv.GetResponse{Value: make([]byte, n)}, nil
	default:
		return &kv.GetResponse{Value: []byte(key)}, nil
	}
}

func (server) Put(context.Context, *kv.PutRequest) (*kv.Empty, error) {
	return &kv.Empty{}, nil
}

// streamService is stream.S, written out by hand: grpc-go needs only the names and the handlers.
var streamService = grpc.ServiceDesc{
	ServiceName: "stream.S",
	HandlerType: (*interface{})(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Count", Handler: count, ServerStreams: true},
		{StreamName: "Echo", Handler: echo, ServerStreams: true, ClientStreams: true},
	},
}

func count(_ interface{}, stream grpc.ServerStream) error {
	req := new(kv.GetRequest)
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	key := req.GetKey()
	if key == "hang" {
		ctx := stream.Context()
		_, hasDeadline := ctx.Deadline()
		report(map[string]interface{}{"started": true})
		<-ctx.Done()
		report(map[string]interface{}{"cancelled": true, "deadline": hasDeadline})
		lateAnswer()
		return ctx.Err()
	}
	n, err := strconv.Atoi(strings.TrimSuffix(key, ":fail"))
	if err != nil || n < 0 {
		return status.Error(codes.InvalidArgument, "Count needs N, N:fail or hang")
	}
	for i := 0; i < n; i++ {
		value := make([]byte, 8<<10)
		binary.BigEndian.PutUint32(value, uint32(i))
		if err := stream.SendMsg(&kv.GetResponse{Value: value}); err != nil {
			return err
		}
	}
	if strings.HasSuffix(key, ":fail") {
		return status.Errorf(codes.FailedPrecondition, "failed after %d", n)
	}
	return nil
}

func echo(_ interface{}, stream grpc.ServerStream) error {
	for {
		req := new(kv.GetRequest)
		if err := stream.RecvMsg(req); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.SendMsg(&kv.GetResponse{Value: []byte(req.GetKey())}); err != nil {
			return err
		}
	}
}

func main() {
	socket := flag.String("socket", "", "unix socket path")
	flag.Parse()
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Large enough for the receive-limit test's values in both directions.
	s := grpc.NewServer(grpc.MaxSendMsgSize(64<<20), grpc.MaxRecvMsgSize(64<<20))
	kv.RegisterKVServer(s, server{})
	s.RegisterService(&streamService, struct{}{})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop
		s.GracefulStop()
	}()
	fmt.Println("listening")
	if err := s.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
