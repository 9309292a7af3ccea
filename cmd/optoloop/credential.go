package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/optoloop/optoloop/coordinator/api"
)

type credentialOptions struct {
	keyFile, role, holder, out string
	newKey                     bool
}

func newClusterCredentialCmd() *cobra.Command {
	var o credentialOptions
	cmd := &cobra.Command{
		Use:   "credential --key-file KEY (--new-key | --role ROLE --holder NAME --out FILE)",
		Short: "Make the cluster's credential key, or issue a signed credential (admin, operator, worker, learner, viewer) from it",
		Long: "credential issues a coordinator credential signed with the cluster's credential key (the file every\n" +
			"coordinator reads with --credential-key-file): optoloop1.ROLE.HOLDER.MAC. Coordinators verify it\n" +
			"without a list, so a lab adds a worker by issuing its credential here; no coordinator restarts.\n" +
			"A worker or learner credential names its holder: it acts only as NAME and, for a worker process\n" +
			"serving several arenas, NAME-0, NAME-1, ... (give the process --id NAME). Admin (membership),\n" +
			"operator (submit, cancel, drain) and viewer (read) credentials name who holds them.\n" +
			"--new-key writes a new key (32 random bytes in hex) to --key-file, which must not exist.\n" +
			"The credential goes to --out, a new file of mode 0600 (- prints it: for a secret manager's pipe).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCredential(cmd.OutOrStdout(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.keyFile, "key-file", "", "the cluster's credential key file (mode 0600; required)")
	f.BoolVar(&o.newKey, "new-key", false, "write a new credential key to --key-file (which must not exist)")
	f.StringVar(&o.role, "role", "", "admin, operator, worker, learner or viewer")
	f.StringVar(&o.holder, "holder", "", "who holds it: a worker's or learner's --id, or a person's or program's name")
	f.StringVar(&o.out, "out", "", "new file (mode 0600) to write the credential to; - prints it")
	return cmd
}

func runCredential(stdout io.Writer, o credentialOptions) error {
	if o.keyFile == "" {
		return errors.New("--key-file is required")
	}
	if o.newKey {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("credential key: %w", err)
		}
		if err := writeNewSecret(o.keyFile, hex.EncodeToString(b)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "credential key: %s\n", o.keyFile)
		if o.role == "" {
			return nil
		}
	}
	if o.role == "" || o.holder == "" || o.out == "" {
		return errors.New("--role, --holder and --out are required to issue a credential")
	}
	key, err := readKeyFile(o.keyFile)
	if err != nil {
		return err
	}
	tok, err := api.IssueCredential([]byte(key), api.Role(o.role), o.holder)
	if err != nil {
		return err
	}
	if o.out == "-" {
		_, err := fmt.Fprintln(stdout, tok)
		return err
	}
	if err := writeNewSecret(o.out, tok); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s credential of %s: %s\n", o.role, o.holder, o.out)
	return nil
}

// writeNewSecret writes s and a newline to path, a new file of mode 0600.
func writeNewSecret(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("secret file: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("secret file %s: %w", path, err)
	}
	return f.Close()
}
