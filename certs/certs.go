// Package certs makes and loads the TLS material of an optoloop cluster: a certificate
// authority (ECDSA P-256, crypto/x509) and, signed by it, a certificate for every coordinator
// node (server and client authentication, its host names and IPs as SANs), worker, learner and
// other client (client authentication). The role is written into the certificate (Subject
// OrganizationalUnit "node", "worker", "learner" or "client") and the name into its Common
// Name, so that a coordinator's Raft port accepts only node certificates the cluster's CA
// signed (PeerServerConfig, PeerClientConfig), while its HTTP port lets any client in and
// leaves the credential to the bearer tokens (ServerConfig).
//
// Write lays out what `optoloop cluster certs` makes:
//
//	DIR/ca.pem, DIR/ca-key.pem             the CA (the key is kept to issue more)
//	DIR/NAME/ca.pem, cert.pem, key.pem     one folder per node, worker, learner, client
//
// Keys are 0600 and folders 0700. Load reads one NAME folder (what --tls-dir names).
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Role is what a certificate's holder is (its Subject OrganizationalUnit).
type Role string

// The roles of certificates.
const (
	RoleNode    Role = "node"
	RoleWorker  Role = "worker"
	RoleLearner Role = "learner"
	RoleClient  Role = "client"
)

// File names inside a folder Write makes.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
	CertFile  = "cert.pem"
	KeyFile   = "key.pem"
)

// Validity is how long certificates Write makes are valid (CA and leaves alike).
const Validity = 5 * 365 * 24 * time.Hour

// DefaultHosts returns the SANs every node certificate gets: loopback addresses and localhost.
func DefaultHosts() []string { return []string{"127.0.0.1", "::1", "localhost"} }

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM is the certificate PEM-encoded (what every holder's ca.pem is).
	CertPEM []byte
}

// NewCA makes a new CA named name (its Common Name), valid from now for Validity.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"optoloop"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads the CA of a folder Write made (DIR/ca.pem and DIR/ca-key.pem).
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA in %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("certs: CA key in %s is not ECDSA", dir)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: CA in %s: %w", dir, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("certs: %s in %s is not a CA certificate", CAFile, dir)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// KeyPEM returns the CA's private key PEM-encoded.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.Key) }

// Issue makes a certificate for name of role, signed by ca, valid from now for Validity. A
// node's certificate authenticates servers and clients and holds hosts (IPs or DNS names) as
// its SANs; the others authenticate clients only and take no hosts.
func (ca *CA) Issue(role Role, name string, hosts []string, now time.Time) (certPEM, keyPEMBytes []byte, err error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	if !role.valid() {
		return nil, nil, fmt.Errorf("certs: unknown role %q", role)
	}
	if role != RoleNode && len(hosts) > 0 {
		return nil, nil, fmt.Errorf("certs: %s %s: only node certificates take hosts", role, name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"optoloop"}, OrganizationalUnit: []string{string(role)}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if role == RoleNode {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		for _, h := range hosts {
			if err := checkHost(h); err != nil {
				return nil, nil, err
			}
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: certificate of %s: %w", name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp, nil
}

func (r Role) valid() bool {
	switch r {
	case RoleNode, RoleWorker, RoleLearner, RoleClient:
		return true
	}
	return false
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("certs: key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return n, nil
}

// namePattern is what a holder's name may be: it names a folder too.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("certs: name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$`)

func checkHost(h string) error {
	if net.ParseIP(h) != nil || (len(h) <= 253 && hostPattern.MatchString(h)) {
		return nil
	}
	return fmt.Errorf("certs: host %q is neither an IP address nor a DNS name", h)
}

// Node is a coordinator node to issue a certificate for: its name and the hosts (IPs, DNS
// names) its certificate holds besides DefaultHosts.
type Node struct {
	Name  string
	Hosts []string
}

// ParseNodes reads node specs "NAME" or "NAME=HOST+HOST..." (e.g. c1=10.0.0.5+c1.lab).
func ParseNodes(specs []string) ([]Node, error) {
	var out []Node
	for _, s := range specs {
		name, hosts, _ := strings.Cut(s, "=")
		n := Node{Name: name}
		if hosts != "" {
			n.Hosts = strings.Split(hosts, "+")
		}
		if err := checkName(n.Name); err != nil {
			return nil, fmt.Errorf("node %q: %w", s, err)
		}
		for _, h := range n.Hosts {
			if err := checkHost(h); err != nil {
				return nil, fmt.Errorf("node %q: %w", s, err)
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// Plan is what Write makes.
type Plan struct {
	// Nodes are the coordinator nodes; each node's certificate holds DefaultHosts, Hosts and
	// its own Node.Hosts.
	Nodes []Node
	// Hosts are SANs added to every node's certificate.
	Hosts []string
	// Workers, Learners and Clients are the names of the client certificates.
	Workers, Learners, Clients []string
	// AddToCA issues the certificates with the CA already in the folder (made by an earlier
	// Write), which must be there. Without it the folder must hold no CA, unless
	// ReplaceCA.
	AddToCA bool
	// ReplaceCA makes a new CA even though the folder holds one (every certificate the old
	// one signed stops being accepted by nodes given the new ca.pem).
	ReplaceCA bool
	// Now is when the certificates start to be valid (less an hour). Default time.Now.
	Now func() time.Time
}

// Write makes the CA (or, with AddToCA, reads it) and the certificates of p in dir. Every input
// is checked before anything is written: on an error nothing is.
func Write(dir string, p Plan) error {
	if dir == "" {
		return errors.New("certs: no output folder")
	}
	if p.AddToCA && p.ReplaceCA {
		return errors.New("certs: adding to the CA and replacing it are exclusive")
	}
	type holder struct {
		role  Role
		name  string
		hosts []string
	}
	var hs []holder
	seen := map[string]bool{}
	add := func(role Role, name string, hosts []string) error {
		if err := checkName(name); err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
		if seen[name] {
			return fmt.Errorf("certs: name %q given twice (every holder needs its own folder)", name)
		}
		seen[name] = true
		hs = append(hs, holder{role, name, hosts})
		return nil
	}
	for _, h := range p.Hosts {
		if err := checkHost(h); err != nil {
			return err
		}
	}
	for _, n := range p.Nodes {
		hosts := DefaultHosts()
		for _, h := range slices.Concat(p.Hosts, n.Hosts) {
			if err := checkHost(h); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		if err := add(RoleNode, n.Name, hosts); err != nil {
			return err
		}
	}
	for _, g := range []struct {
		role  Role
		names []string
	}{{RoleWorker, p.Workers}, {RoleLearner, p.Learners}, {RoleClient, p.Clients}} {
		for _, n := range g.names {
			if err := add(g.role, n, nil); err != nil {
				return err
			}
		}
	}
	if len(hs) == 0 {
		return errors.New("certs: nothing to issue: name at least one node, worker, learner or client")
	}
	if seen[CAFile] || seen[CAKeyFile] {
		return fmt.Errorf("certs: %s and %s are the CA's files, not holders' names", CAFile, CAKeyFile)
	}
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(dir, h.name)); err == nil {
			return fmt.Errorf("certs: %s already exists; choose another name or folder", filepath.Join(dir, h.name))
		}
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	_, statErr := os.Stat(filepath.Join(dir, CAFile))
	hasCA := statErr == nil
	var ca *CA
	var err error
	switch {
	case p.AddToCA:
		if ca, err = LoadCA(dir); err != nil {
			return err
		}
	case hasCA && !p.ReplaceCA:
		return fmt.Errorf("certs: %s already holds a CA: add certificates with it (--add) or replace it (--replace-ca)", dir)
	default:
		if ca, err = NewCA("optoloop cluster CA", now()); err != nil {
			return err
		}
	}
	// Issue everything in memory first, then write.
	type files struct {
		name            string
		cert, key, capm []byte
	}
	var out []files
	for _, h := range hs {
		c, k, err := ca.Issue(h.role, h.name, h.hosts, now())
		if err != nil {
			return err
		}
		out = append(out, files{h.name, c, k, ca.CertPEM})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if !p.AddToCA {
		kp, err := ca.KeyPEM()
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, CAKeyFile), kp, 0o600); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, CAFile), ca.CertPEM, 0o644); err != nil {
			return err
		}
	}
	for _, f := range out {
		d := filepath.Join(dir, f.name)
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if err := writeFile(filepath.Join(d, CAFile), f.capm, 0o644); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, CertFile), f.cert, 0o644); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, KeyFile), f.key, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes b to path (replaced if present) with mode perm, through a temporary file
// renamed into place.
func writeFile(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
