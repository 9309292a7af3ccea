package childproc

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// ParseAddr splits a server's listen address: "" is 127.0.0.1 on a free port (0), an empty host
// or "localhost" is 127.0.0.1, and any other host must be an IP address.
func ParseAddr(addr string) (host string, port int, err error) {
	if addr == "" {
		return "127.0.0.1", 0, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	switch {
	case h == "" || h == "localhost":
		h = "127.0.0.1"
	case net.ParseIP(h) == nil:
		return "", 0, fmt.Errorf("address %q: the host must be an IP address", addr)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	return h, port, nil
}

// DialHost returns the host clients connect to for a server bound to host: loopback (127.0.0.1,
// or ::1 for IPv6) for an unspecified address, else host itself.
func DialHost(host string) string {
	ip := net.ParseIP(host)
	switch {
	case !ip.IsUnspecified():
		return host
	case ip.To4() == nil:
		return "::1"
	default:
		return "127.0.0.1"
	}
}

// FreePort returns a TCP port that was free on host a moment ago.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WriteFile writes data to path with mode 0600, also when path existed with another mode.
func WriteFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
