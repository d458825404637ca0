// go-netrpc: the Go standard library's net/rpc on the shared benchmark workload, with the same
// flags and the same JSON output as ferry-bench.
//
//	go-netrpc server --port 9103
//	go-netrpc client --port 9103 --concurrency 100 --connections 4 --duration 10 --json
//
// net/rpc frames calls with gob. The argument and the reply are the protobuf encoding of
// BenchmarkMessage carried as a gob []byte: the client encodes the 581-byte message for every
// call and decodes the reply; the server decodes the request, sets field1 = "OK" and
// field2 = 100, and encodes the reply (message.go is the hand-written protobuf codec).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const payloadBytes = 581

// Hello is the RPC service: Hello.Say.
type Hello struct{}

// Say answers the workload: decode, set field1 and field2, encode.
func (Hello) Say(args []byte, reply *[]byte) error {
	var m BenchmarkMessage
	if err := m.Unmarshal(args); err != nil {
		return err
	}
	m.Field1 = "OK"
	m.Field2 = 100
	*reply = m.Marshal(make([]byte, 0, len(args)))
	return nil
}

type options struct {
	system      string
	host        string
	port        int
	threads     int
	codec       string
	concurrency int
	connections int
	calls       int
	duration    float64
	warmup      float64
	jsonOutput  bool
}

func parse(role string, args []string) options {
	var o options
	fs := flag.NewFlagSet(role, flag.ExitOnError)
	fs.StringVar(&o.system, "system", "netrpc", "the system under test (only netrpc)")
	fs.StringVar(&o.host, "host", "127.0.0.1", "the server address")
	fs.IntVar(&o.port, "port", 9103, "the server port")
	fs.IntVar(&o.threads, "threads", 2, "GOMAXPROCS (at most 2, the same budget as every system)")
	fs.StringVar(&o.codec, "codec", "protobuf", "body codec (only protobuf)")
	fs.IntVar(&o.concurrency, "concurrency", 100, "concurrent callers")
	fs.IntVar(&o.connections, "connections", 4, "connections shared by the callers; 0: one per caller")
	fs.IntVar(&o.calls, "calls", 100000, "total measured calls, when --duration is not given")
	fs.Float64Var(&o.duration, "duration", 0, "measure for this many seconds instead of a number of calls")
	fs.Float64Var(&o.warmup, "warmup", 2, "seconds of load before measuring starts")
	fs.BoolVar(&o.jsonOutput, "json", false, "print one JSON object instead of a table")
	fs.Parse(args)
	if o.system != "netrpc" || o.codec != "protobuf" {
		fail("--system must be netrpc and --codec protobuf")
	}
	if o.threads < 1 || o.threads > 2 {
		fail("--threads must be 1 or 2")
	}
	if o.concurrency < 1 || o.connections < 0 || o.calls < 1 || o.duration < 0 || o.warmup < 0 {
		fail("bad counts")
	}
	runtime.GOMAXPROCS(o.threads)
	return o
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "go-netrpc:", message)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: go-netrpc server|client [flags]")
	}
	if n := len(workloadMessage().Marshal(nil)); n != payloadBytes {
		fail(fmt.Sprintf("BenchmarkMessage encodes to %d bytes, not %d", n, payloadBytes))
	}
	switch os.Args[1] {
	case "server":
		serve(parse("server", os.Args[2:]))
	case "client":
		runClient(parse("client", os.Args[2:]))
	default:
		fail("usage: go-netrpc server|client [flags]")
	}
}

func serve(o options) {
	server := rpc.NewServer()
	if err := server.Register(Hello{}); err != nil {
		fail(err.Error())
	}
	listener, err := net.Listen("tcp", net.JoinHostPort(o.host, fmt.Sprint(o.port)))
	if err != nil {
		fail(err.Error())
	}
	port := listener.Addr().(*net.TCPAddr).Port
	fmt.Printf("listening netrpc %s:%d pid %d threads %d\n", o.host, port, os.Getpid(), o.threads)
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go server.ServeConn(conn)
	}
}

type latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

type report struct {
	System                 string  `json:"system"`
	Codec                  string  `json:"codec"`
	Concurrency            int     `json:"concurrency"`
	Connections            int     `json:"connections"`
	OneConnectionPerCaller bool    `json:"one_connection_per_caller"`
	Threads                int     `json:"threads"`
	PayloadBytes           int     `json:"payload_bytes"`
	Calls                  int     `json:"calls"`
	Errors                 int     `json:"errors"`
	FirstError             string  `json:"first_error,omitempty"`
	Seconds                float64 `json:"seconds"`
	QPS                    float64 `json:"qps"`
	LatencyMicroseconds    latency `json:"latency_us"`
}

type callerResult struct {
	latencies  []time.Duration
	errors     int
	firstError error
	finished   time.Time
}

func call(client *rpc.Client, request *BenchmarkMessage, buffer []byte) error {
	args := request.Marshal(buffer[:0])
	var reply []byte
	if err := client.Call("Hello.Say", args, &reply); err != nil {
		return err
	}
	var answer BenchmarkMessage
	if err := answer.Unmarshal(reply); err != nil {
		return err
	}
	if answer.Field1 != "OK" {
		return errors.New("unexpected reply: field1 is " + answer.Field1)
	}
	return nil
}

func runClient(o options) {
	connections := o.connections
	if connections == 0 || connections > o.concurrency {
		connections = o.concurrency
	}
	address := net.JoinHostPort(o.host, fmt.Sprint(o.port))
	clients := make([]*rpc.Client, connections)
	for i := range clients {
		client, err := rpc.Dial("tcp", address)
		if err != nil {
			fail(err.Error())
		}
		clients[i] = client
	}

	measureStart := time.Now().Add(time.Duration(o.warmup * float64(time.Second)))
	var measureEnd time.Time
	if o.duration > 0 {
		measureEnd = measureStart.Add(time.Duration(o.duration * float64(time.Second)))
	}
	remaining := int64(o.calls)
	results := make([]callerResult, o.concurrency)
	var wg sync.WaitGroup
	for i := 0; i < o.concurrency; i++ {
		wg.Add(1)
		go func(index int) {
			defer wg.Done()
			client := clients[index%connections]
			request := workloadMessage()
			buffer := make([]byte, 0, 640)
			result := &results[index]
			for time.Now().Before(measureStart) {
				if err := call(client, request, buffer); err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
			for {
				if o.duration > 0 {
					if !time.Now().Before(measureEnd) {
						break
					}
				} else if atomic.AddInt64(&remaining, -1) < 0 {
					break
				}
				start := time.Now()
				if err := call(client, request, buffer); err != nil {
					result.errors++
					if result.firstError == nil {
						result.firstError = err
					}
					if result.errors > 1000 {
						break
					}
					continue
				}
				result.latencies = append(result.latencies, time.Since(start))
			}
			result.finished = time.Now()
		}(i)
	}
	wg.Wait()

	var all []time.Duration
	errorCount := 0
	var firstError error
	last := measureStart
	for _, r := range results {
		all = append(all, r.latencies...)
		errorCount += r.errors
		if firstError == nil {
			firstError = r.firstError
		}
		if r.finished.After(last) {
			last = r.finished
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	seconds := last.Sub(measureStart).Seconds()
	rep := report{
		System: "netrpc", Codec: o.codec, Concurrency: o.concurrency, Connections: connections,
		OneConnectionPerCaller: o.connections == 0, Threads: o.threads, PayloadBytes: payloadBytes,
		Calls: len(all), Errors: errorCount, Seconds: seconds,
	}
	if firstError != nil {
		rep.FirstError = firstError.Error()
	}
	if seconds > 0 {
		rep.QPS = float64(len(all)) / seconds
	}
	if len(all) > 0 {
		var sum time.Duration
		for _, d := range all {
			sum += d
		}
		micros := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
		at := func(p float64) float64 {
			index := int(p/100*float64(len(all))+0.5) - 1
			if index < 0 {
				index = 0
			}
			if index >= len(all) {
				index = len(all) - 1
			}
			return micros(all[index])
		}
		rep.LatencyMicroseconds = latency{
			Mean: micros(sum) / float64(len(all)), P50: at(50), P99: at(99), P999: at(99.9),
			Max: micros(all[len(all)-1]),
		}
	}
	for _, client := range clients {
		client.Close()
	}
	if o.jsonOutput {
		out, _ := json.Marshal(rep)
		fmt.Println(string(out))
		return
	}
	l := rep.LatencyMicroseconds
	conns := fmt.Sprint(rep.Connections)
	if rep.OneConnectionPerCaller {
		conns += " (1/caller)"
	}
	fmt.Printf("%-8s%-10s%-6s%-16s%-10s%-8s%-10s%-10s%-10s%-10s%-10s%s\n",
		"system", "codec", "conc", "conns", "calls", "errors", "QPS", "mean µs", "p50 µs", "p99 µs", "p999 µs", "max µs")
	fmt.Printf("%-8s%-10s%-6d%-16s%-10d%-8d%-10.0f%-10.1f%-10.1f%-10.1f%-10.1f%.1f\n",
		rep.System, rep.Codec, rep.Concurrency, conns, rep.Calls, rep.Errors, rep.QPS, l.Mean, l.P50, l.P99, l.P999, l.Max)
	if rep.FirstError != "" {
		fmt.Println("first error:", rep.FirstError)
	}
}
