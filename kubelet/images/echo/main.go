// Command echo is skiff's test image: an HTTP server that reports the pod it runs in, a TCP
// echo and a UDP echo server, plus small tools tests run in the image (it has no shell).
//
//	/echo [serve]          HTTP on :8080 (HTTP_PORT), TCP echo on :9000 (TCP_PORT), UDP echo on :9001 (UDP_PORT)
//	/echo exit CODE [MS]   exit with CODE after MS milliseconds
//	/echo lookup NAME      resolve NAME through the pod's resolv.conf and print the addresses
//	/echo get URL [N]      N HTTP GETs on new connections, printing each body (exit 1 on an error)
//	/echo sleep SECONDS    sleep
//	/echo cat FILE...      print files
//	/echo ls DIR           list a directory
//	/echo env              print the environment
//	/echo write FILE TEXT  write a file
//	/echo rm FILE          remove a file
//	/echo test FILE        exit 0 if FILE exists, else 1
//	/echo failonce FILE    exit 1 if FILE is missing (creating it), else 0
//	/echo stdin            copy stdin to stdout
//	/echo get URL          HTTP GET and print the body
//
// HTTP paths: / prints "pod=NAME ip=IP client=ADDR"; /healthz answers 200 unless the file
// $UNHEALTHY_FILE (default /tmp/unhealthy) exists; /env/NAME prints a variable; /file?path=P
// prints a file. On SIGTERM the server waits $TERM_DELAY (a Go duration, default 0) and exits 0.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "serve":
		serve()
	case "exit":
		code, _ := strconv.Atoi(arg(args, 1, "0"))
		ms, _ := strconv.Atoi(arg(args, 2, "0"))
		fmt.Printf("exiting with %d after %dms\n", code, ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		os.Exit(code)
	case "lookup":
		addrs, err := net.LookupHost(arg(args, 1, "kubernetes.default"))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
	case "get":
		n, _ := strconv.Atoi(arg(args, 2, "1"))
		os.Exit(get(arg(args, 1, "http://127.0.0.1:8080/"), n))
	case "sleep":
		s, _ := strconv.ParseFloat(arg(args, 1, "3600"), 64)
		time.Sleep(time.Duration(s * float64(time.Second)))
	case "cat":
		code := 0
		for _, f := range args[1:] {
			b, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				code = 1
				continue
			}
			os.Stdout.Write(b)
		}
		os.Exit(code)
	case "ls":
		ents, err := os.ReadDir(arg(args, 1, "."))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, e := range ents {
			fmt.Println(e.Name())
		}
	case "env":
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Println(e)
		}
	case "write":
		if err := os.WriteFile(arg(args, 1, ""), []byte(arg(args, 2, "")), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "rm":
		if err := os.Remove(arg(args, 1, "")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "test":
		if _, err := os.Stat(arg(args, 1, "")); err != nil {
			os.Exit(1)
		}
	case "failonce":
		// Exit 1 the first time (creating FILE), 0 once FILE exists: OnFailure tests.
		f := arg(args, 1, "/tmp/failonce")
		if _, err := os.Stat(f); err != nil {
			os.WriteFile(f, []byte("x"), 0o644)
			fmt.Println("first run: failing")
			os.Exit(1)
		}
		fmt.Println("second run: succeeding")
	case "stdin":
		// Copy stdin to stdout (exec stdin tests).
		io.Copy(os.Stdout, os.Stdin)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q (serve, exit, sleep, cat, ls, env, write, rm, test, stdin)\n", args[0])
		os.Exit(2)
	}
}

func arg(a []string, i int, def string) string {
	if i < len(a) {
		return a[i]
	}
	return def
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func podIP() string {
	if ip := os.Getenv("POD_IP"); ip != "" {
		return ip
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

func serve() {
	host, _ := os.Hostname()
	name := env("POD_NAME", host)
	ip := podIP()
	unhealthy := env("UNHEALTHY_FILE", "/tmp/unhealthy")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pod=%s ip=%s client=%s\n", name, ip, r.RemoteAddr)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(unhealthy); err == nil {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/env/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.PathValue("name"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	httpAddr := ":" + env("HTTP_PORT", "8080")
	go func() {
		if err := http.ListenAndServe(httpAddr, mux); err != nil {
			fmt.Fprintln(os.Stderr, "http:", err)
			os.Exit(1)
		}
	}()
	go tcpEcho(":" + env("TCP_PORT", "9000"))
	go udpEcho(":" + env("UDP_PORT", "9001"))
	fmt.Printf("serving pod=%s ip=%s http%s tcp:%s udp:%s\n", name, ip, httpAddr, env("TCP_PORT", "9000"), env("UDP_PORT", "9001"))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	d, _ := time.ParseDuration(env("TERM_DELAY", "0s"))
	fmt.Printf("got %v, exiting in %s\n", s, d)
	time.Sleep(d)
	os.Exit(0)
}

func tcpEcho(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcp:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() { defer c.Close(); io.Copy(c, c) }()
	}
}

func udpEcho(addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udp:", err)
		os.Exit(1)
	}
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		pc.WriteTo(buf[:n], from)
	}
}

// get fetches url n times, each on a new connection so a Service spreads them over backends.
func get(url string, n int) int {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	code := 0
	for i := 0; i < n; i++ {
		resp, err := c.Get(url)
		if err != nil {
			fmt.Println("error", err)
			code = 1
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			code = 1
		}
		fmt.Printf("%s\n", strings.TrimSpace(string(b)))
	}
	return code
}
