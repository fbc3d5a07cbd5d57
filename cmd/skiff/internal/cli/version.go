package cli

import (
	"context"
	"fmt"
	"runtime"
)

// ClientVersion is set at build time with -ldflags "-X ...cli.ClientVersion=v1.2.3".
var ClientVersion = "v0.1.0-dev"

// Version prints the client's and the server's versions; clientOnly skips the server.
func (f *Factory) Version(ctx context.Context, clientOnly bool) error {
	fmt.Fprintf(f.Out, "Client Version: %s (%s, %s/%s)\n", ClientVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if clientOnly {
		return nil
	}
	d, err := f.Discovery()
	if err != nil {
		return err
	}
	v, err := d.ServerVersion()
	if err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	fmt.Fprintf(f.Out, "Server Version: %s\n", v.GitVersion)
	return nil
}
