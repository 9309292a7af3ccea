package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Identity is one holder's TLS material as Load reads it from a folder: the cluster's CA and,
// unless the folder holds only the CA, the holder's own certificate and key.
type Identity struct {
	// Dir is the folder it was read from.
	Dir string
	// CAs holds the cluster's CA certificate (ca.pem).
	CAs *x509.CertPool
	// Cert is the holder's certificate and key (nil when the folder holds only ca.pem: a
	// client that verifies the nodes but shows no certificate of its own).
	Cert *tls.Certificate
	// Name and Role are the certificate's Common Name and role ("" without Cert).
	Name string
	Role Role
}

// Load reads a holder's folder as Write lays it out: ca.pem, and cert.pem with key.pem (both
// or neither). The certificate must be signed by that CA and valid now.
func Load(dir string) (*Identity, error) {
	if dir == "" {
		return nil, errors.New("certs: no TLS folder")
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("certs: TLS folder %s: %w", dir, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", filepath.Join(dir, CAFile))
	}
	id := &Identity{Dir: dir, CAs: pool}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	_, cerr := os.Stat(certPath)
	_, kerr := os.Stat(keyPath)
	switch {
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
		return id, nil
	case cerr != nil || kerr != nil:
		return nil, fmt.Errorf("certs: TLS folder %s: %s and %s go together (%v)", dir, CertFile, KeyFile, errors.Join(cerr, kerr))
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: TLS folder %s: %w", dir, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", certPath, err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("certs: %s is not signed by %s or not valid now: %w", certPath, filepath.Join(dir, CAFile), err)
	}
	pair.Leaf = leaf
	id.Cert, id.Name, id.Role = &pair, leaf.Subject.CommonName, RoleOf(leaf)
	return id, nil
}

// RoleOf returns the role a certificate names ("" when it names none or several).
func RoleOf(c *x509.Certificate) Role {
	if c == nil || len(c.Subject.OrganizationalUnit) != 1 {
		return ""
	}
	r := Role(c.Subject.OrganizationalUnit[0])
	if !r.valid() {
		return ""
	}
	return r
}

// VerifyPeerRole returns a tls.Config.VerifyConnection check that the peer showed a (verified)
// certificate of role want.
func VerifyPeerRole(want Role) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no peer certificate")
		}
		leaf := cs.PeerCertificates[0]
		if got := RoleOf(leaf); got != want {
			return fmt.Errorf("peer certificate %q is a %q certificate, not a %q one", leaf.Subject.CommonName, got, want)
		}
		return nil
	}
}

func (id *Identity) certificates() []tls.Certificate {
	if id.Cert == nil {
		return nil
	}
	return []tls.Certificate{*id.Cert}
}

// ServerConfig is a node's HTTPS configuration: its certificate; a client certificate is
// verified against the CA when shown, and not required (the bearer tokens are the credential).
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: id.certificates(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    id.CAs,
		NextProtos:   []string{"http/1.1"},
	}
}

// ClientConfig is an HTTPS client's configuration: the nodes are verified against the CA, and
// the holder's certificate (if any) is shown.
func (id *Identity) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: id.certificates(),
		RootCAs:      id.CAs,
	}
}

// PeerServerConfig is what a node's Raft port accepts: only peers showing a node certificate
// signed by the CA.
func (id *Identity) PeerServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     id.certificates(),
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        id.CAs,
		VerifyConnection: VerifyPeerRole(RoleNode),
	}
}

// PeerClientConfig is how a node dials a peer's Raft port: it shows its node certificate and
// accepts only a node certificate signed by the CA (set ServerName to the peer's host).
func (id *Identity) PeerClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     id.certificates(),
		RootCAs:          id.CAs,
		VerifyConnection: VerifyPeerRole(RoleNode),
	}
}

// CheckNode reports whether id can serve as a coordinator node (a node certificate).
func (id *Identity) CheckNode() error {
	where := "the TLS identity"
	if id.Dir != "" {
		where = "TLS folder " + id.Dir
	}
	switch {
	case id.Cert == nil:
		return fmt.Errorf("%s holds no certificate (cert.pem, key.pem): a node needs its own", where)
	case id.Role != RoleNode:
		return fmt.Errorf("%s holds a %q certificate (%s): a node needs a node certificate", where, id.Role, id.Name)
	}
	return nil
}

// Hosts returns the SANs of id's certificate (IPs and DNS names).
func (id *Identity) Hosts() []string {
	if id.Cert == nil || id.Cert.Leaf == nil {
		return nil
	}
	var out []string
	for _, ip := range id.Cert.Leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return slices.Concat(out, id.Cert.Leaf.DNSNames)
}

// NewIdentity issues a certificate for name of role (see Issue) and returns it, with ca, as an
// Identity held in memory (tests, and tools that never write the key).
func (ca *CA) NewIdentity(role Role, name string, hosts []string, now time.Time) (*Identity, error) {
	certPEM, keyPEM, err := ca.Issue(role, name, hosts, now)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &Identity{CAs: pool, Cert: &pair, Name: name, Role: role}, nil
}
