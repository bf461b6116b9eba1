package proxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// writeCert writes a self-signed certificate for names into dir, as name.crt and
// name.key, and returns the two paths.
func writeCert(t *testing.T, dir, file string, serial int64, names ...string) CertFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cf := CertFiles{CertFile: filepath.Join(dir, file+".crt"), KeyFile: filepath.Join(dir, file+".key")}
	// Write then rename, as certificate tools do.
	for path, data := range map[string][]byte{
		cf.CertFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		cf.KeyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	return cf
}

// tlsProxy serves the test proxy over TLS too and returns the TLS address.
func tlsProxy(t *testing.T, px *testProxy, cs *CertStore) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go px.s.ServeTLS(ln, cs) //nolint:errcheck // ends with the proxy's Shutdown
	return ln.Addr().String()
}

// served returns the serial of the certificate the server presents for sni.
func served(t *testing.T, addr, sni string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificates
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSSNIAndRotation(t *testing.T) {
	dir := t.TempDir()
	shop := writeCert(t, dir, "shop", 1, "shop.example")
	wild := writeCert(t, dir, "wild", 2, "*.news.example")
	cs, err := NewCertStore([]CertFiles{shop, wild}, nil)
	if err != nil {
		t.Fatal(err)
	}
	be := newRawBackend(t, func(head string, _ []byte) string {
		proto := "?"
		if strings.Contains(head, "X-Forwarded-Proto: https\r\n") {
			proto = "https"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: " + string(rune('0'+len(proto))) + "\r\n\r\n" + proto
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	addr := tlsProxy(t, px, cs)

	for sni, want := range map[string]int64{"shop.example": 1, "SHOP.example": 1, "live.news.example": 2, "unknown.example": 1, "": 1} {
		if got := served(t, addr, sni); got != want {
			t.Errorf("SNI %q: certificate %d, want %d", sni, got, want)
		}
	}

	// A keep-alive connection opened before a rotation keeps working after it.
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "shop.example", InsecureSkipVerify: true}) //nolint:gosec
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() string {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatal(err)
		}
		return string(resp.Body())
	}
	if got := get(); got != "https" {
		t.Fatalf("X-Forwarded-Proto over TLS: backend saw %q", got)
	}
	ctx, cancel := contextCancel(t)
	defer cancel()
	if err := cs.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	writeCert(t, dir, "shop", 3, "shop.example")
	waitUntil(t, "the renewed certificate to be served", func() bool { return served(t, addr, "shop.example") == 3 })
	if got := get(); got != "https" {
		t.Fatalf("the connection opened before the rotation: %q", got)
	}

	// A bad new certificate is refused and the current one keeps serving.
	if err := os.WriteFile(shop.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cs.Reload(); err == nil || !strings.Contains(err.Error(), "shop.crt") {
		t.Fatalf("reload of a bad certificate: %v, want an error naming the file", err)
	}
	if got := served(t, addr, "shop.example"); got != 3 {
		t.Fatalf("after a bad reload: certificate %d, want 3 still", got)
	}
	if _, failed := cs.Reloads(); failed == 0 {
		t.Fatal("failed reload not counted")
	}
}

func TestTLSRefusesOldVersions(t *testing.T) {
	dir := t.TempDir()
	cs, err := NewCertStore([]CertFiles{writeCert(t, dir, "a", 1, "a.example")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	px := newTestProxy(t, Options{}, PoolSpec{}, newRawBackend(t, nil).addr())
	addr := tlsProxy(t, px, cs)
	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}) //nolint:gosec
	if err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded; the minimum is 1.2")
	}
}

func TestRedirectHTTPToHTTPS(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{RedirectHTTPS: true, HTTPSPort: 8443}, PoolSpec{}, be.addr())
	resp, _ := exchange(t, px.addr, "POST /cart?a=1 HTTP/1.1\r\nHost: shop.example:8080\r\nContent-Length: 0\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(resp) != 308 || !strings.Contains(resp, "Location: https://shop.example:8443/cart?a=1\r\n") {
		t.Fatalf("want 308 to https, got %q", resp)
	}
	if len(be.requests()) != 0 {
		t.Fatal("a redirected request reached the backend")
	}
}

func TestCertStoreRejectsBadFilesAtStart(t *testing.T) {
	dir := t.TempDir()
	good := writeCert(t, dir, "a", 1, "a.example")
	if _, err := NewCertStore([]CertFiles{good, {CertFile: filepath.Join(dir, "missing.crt"), KeyFile: good.KeyFile}}, nil); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("missing file: %v", err)
	}
	other := writeCert(t, dir, "b", 2, "b.example")
	if _, err := NewCertStore([]CertFiles{{CertFile: good.CertFile, KeyFile: other.KeyFile}}, nil); err == nil {
		t.Fatal("a certificate with another certificate's key was accepted")
	}
}
