// Command idleconns opens N keep-alive connections to an HTTP/1.1 server, sends one
// GET on each and reads its answer, then holds them all open and idle until its
// standard input closes (or -hold runs out). It prints "ready N" once every
// connection has had its answer, so a script can measure the server's memory with
// N idle keep-alive connections (bench/conns.sh).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:80", "host:port of the server")
	n := flag.Int("n", 1000, "connections to open")
	hold := flag.Duration("hold", time.Minute, "longest time to hold them idle")
	par := flag.Int("p", 64, "connections opened at once")
	flag.Parse()

	conns := make([]net.Conn, *n)
	errs := make(chan error, *n)
	sem := make(chan struct{}, *par)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := one(*addr)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		failed++
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: %d of %d connections failed, first: %v\n", failed, *n, first)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", *n)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(*hold):
	}
	// Count the connections the server closed while they were held.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err == io.EOF {
			closed++
		}
		c.Close()
	}
	fmt.Printf("closed-by-server %d\n", closed)
}

// one opens a connection, sends a GET and reads the whole answer, leaving the
// connection open.
func one(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || br.Buffered() > 0 {
		c.Close()
		return nil, fmt.Errorf("status %d, %d stray bytes, %v", resp.StatusCode, br.Buffered(), err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
