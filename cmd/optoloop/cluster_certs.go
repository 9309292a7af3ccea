package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/certs"
)

type clusterCertsOptions struct {
	out                        string
	nodes, hosts               []string
	workers, learners, clients []string
	add, replaceCA             bool
}

func newClusterCertsCmd() *cobra.Command {
	var o clusterCertsOptions
	cmd := &cobra.Command{
		Use:   "certs --out DIR --nodes c1,c2,c3 [--workers w1,w2] [--learners l1] [--clients ops]",
		Short: "Make a CA and the TLS certificates of a cluster's nodes, workers, learners and clients",
		Long: "certs makes a certificate authority (ECDSA P-256) and, signed by it, a certificate for every\n" +
			"coordinator node (server and client; SANs 127.0.0.1, ::1, localhost, --hosts and the node's own:\n" +
			"--nodes c1=10.0.0.5+c1.lab), worker, learner and other client (client only). It writes\n" +
			"DIR/ca.pem and DIR/ca-key.pem (keep the key: --add issues more with it) and a folder per name,\n" +
			"DIR/NAME/{ca.pem,cert.pem,key.pem}, to copy to that machine and pass as --tls-dir. Keys are\n" +
			"0600 and folders 0700. A Raft port accepts only node certificates of this CA; the HTTP API\n" +
			"accepts any client that trusts ca.pem (the bearer tokens stay the credential).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runClusterCerts(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "folder to write (required)")
	f.StringSliceVar(&o.nodes, "nodes", nil, "coordinator nodes: NAME or NAME=HOST+HOST (IPs or DNS names the node is reached by)")
	f.StringSliceVar(&o.hosts, "hosts", nil, "extra SANs (IPs or DNS names) of every node's certificate")
	f.StringSliceVar(&o.workers, "workers", nil, "worker names")
	f.StringSliceVar(&o.learners, "learners", nil, "learner names")
	f.StringSliceVar(&o.clients, "clients", nil, "other clients (operators, dashboards, CI)")
	f.BoolVar(&o.add, "add", false, "issue the certificates with the CA already in --out")
	f.BoolVar(&o.replaceCA, "replace-ca", false, "make a new CA even though --out holds one (certificates of the old one stop being accepted)")
	return cmd
}

func runClusterCerts(cmd *cobra.Command, o clusterCertsOptions) error {
	if o.out == "" {
		return errors.New("--out is required")
	}
	nodes, err := certs.ParseNodes(o.nodes)
	if err != nil {
		return fmt.Errorf("--nodes: %w", err)
	}
	p := certs.Plan{Nodes: nodes, Hosts: o.hosts, Workers: o.workers, Learners: o.learners, Clients: o.clients,
		AddToCA: o.add, ReplaceCA: o.replaceCA}
	if err := certs.Write(o.out, p); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if !o.add {
		fmt.Fprintf(w, "CA: %s (key %s: keep it private, --add issues more with it)\n", filepath.Join(o.out, certs.CAFile), filepath.Join(o.out, certs.CAKeyFile))
	}
	for _, g := range []struct {
		role  string
		names []string
	}{{"node", nodeNames(nodes)}, {"worker", o.workers}, {"learner", o.learners}, {"client", o.clients}} {
		for _, n := range g.names {
			fmt.Fprintf(w, "%s %s: --tls-dir %s\n", g.role, n, filepath.Join(o.out, n))
		}
	}
	return nil
}

func nodeNames(ns []certs.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}
