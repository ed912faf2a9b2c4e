// yamuxpeer is one end of a hashicorp/yamux session (the multiplexer go-plugin
// >= 1.6 uses), for testing gatehouse's yamux against the Go implementation.
//
// Usage: yamuxpeer -role server|client -socket PATH
//
// As server it listens on PATH and prints "listening"; as client it dials
// PATH. Either way it echoes every stream the other side opens (all of it,
// after the other side half-closes), pings once, opens one stream of its own
// carrying 1 MiB and reads the echo as it comes (this yamux version ends reads
// on a stream once it closed its own side), and exits when the session closes. Each
// result is one JSON line on stdout: {"ping":true}, {"echo":true,"bytes":N},
// {"closed":true}; a failure is {"error":"..."} and exit status 1.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/hashicorp/yamux"
)

func report(v map[string]interface{}) {
	line, _ := json.Marshal(v)
	os.Stdout.Write(append(line, '\n'))
}

func fail(err error) {
	report(map[string]interface{}{"error": err.Error()})
	os.Exit(1)
}

func echo(stream net.Conn) {
	defer stream.Close()
	data, err := io.ReadAll(stream)
	if err != nil {
		return
	}
	stream.Write(data)
}

func main() {
	role := flag.String("role", "", "server or client")
	socket := flag.String("socket", "", "unix socket path")
	flag.Parse()

	var conn net.Conn
	var err error
	switch *role {
	case "server":
		listener, lerr := net.Listen("unix", *socket)
		if lerr != nil {
			fail(lerr)
		}
		fmt.Println("listening")
		conn, err = listener.Accept()
		listener.Close()
	case "client":
		conn, err = net.Dial("unix", *socket)
	default:
		fail(fmt.Errorf("unknown role %q", *role))
	}
	if err != nil {
		fail(err)
	}

	var session *yamux.Session
	if *role == "server" {
		session, err = yamux.Server(conn, nil)
	} else {
		session, err = yamux.Client(conn, nil)
	}
	if err != nil {
		fail(err)
	}
	go func() {
		for {
			stream, err := session.Accept()
			if err != nil {
				return
			}
			go echo(stream)
		}
	}()

	if _, err := session.Ping(); err != nil {
		fail(fmt.Errorf("ping: %w", err))
	}
	report(map[string]interface{}{"ping": true})

	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7 % 251)
	}
	stream, err := session.Open()
	if err != nil {
		fail(fmt.Errorf("open: %w", err))
	}
	go stream.Write(payload)
	echoed := make([]byte, len(payload))
	if _, err := io.ReadFull(stream, echoed); err != nil {
		fail(fmt.Errorf("read echo: %w", err))
	}
	stream.Close()
	report(map[string]interface{}{"echo": bytes.Equal(echoed, payload), "bytes": len(echoed)})

	<-session.CloseChan()
	report(map[string]interface{}{"closed": true})
}
