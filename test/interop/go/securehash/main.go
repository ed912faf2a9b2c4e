// securehash times go-plugin 1.0.1's SecureConfig.Check, the integrity check
// a go-plugin host can run on a plugin executable before starting it, for the
// verification figures of `npm run bench`.
//
// Usage: securehash [-repeat N] -sha256 HEX FILE [FILE...]
//
// Each repeat checks every FILE in turn (one goroutine, as Client.Start does)
// with a fresh SHA-256 SecureConfig. Stdout carries one JSON object with the
// bytes checked per repeat and the seconds each repeat took; a mismatch is an
// error (exit 1), so the figure is always of a check that passed.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	plugin "github.com/hashicorp/go-plugin"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "securehash:", err)
	os.Exit(1)
}

func main() {
	repeat := flag.Int("repeat", 3, "times every file is checked")
	sums := flag.String("sha256", "", "expected SHA-256 of each FILE, comma-separated hex, in order")
	flag.Parse()
	files := flag.Args()
	expected := strings.Split(*sums, ",")
	if len(files) == 0 || len(expected) != len(files) {
		fail(fmt.Errorf("need as many -sha256 values (%d) as files (%d)", len(expected), len(files)))
	}
	checksums := make([][]byte, len(files))
	var total int64
	for i, file := range files {
		sum, err := hex.DecodeString(expected[i])
		if err != nil {
			fail(fmt.Errorf("%s: %w", file, err))
		}
		checksums[i] = sum
		info, err := os.Stat(file)
		if err != nil {
			fail(err)
		}
		total += info.Size()
	}

	seconds := make([]float64, 0, *repeat)
	for r := 0; r < *repeat; r++ {
		start := time.Now()
		for i, file := range files {
			config := &plugin.SecureConfig{Checksum: checksums[i], Hash: sha256.New()}
			ok, err := config.Check(file)
			if err != nil {
				fail(err)
			}
			if !ok {
				fail(fmt.Errorf("%s: checksum mismatch", file))
			}
		}
		seconds = append(seconds, time.Since(start).Seconds())
	}
	line, err := json.Marshal(map[string]interface{}{"files": len(files), "bytes": total, "seconds": seconds})
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(line, '\n'))
}
