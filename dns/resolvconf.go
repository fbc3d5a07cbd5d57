package dns

import (
	"fmt"
	"net"

	mdns "github.com/miekg/dns"
)

// readResolvConf returns the nameservers of a resolv.conf file as ADDR:PORT.
func readResolvConf(path string) ([]string, error) {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []string
	for _, s := range cc.Servers {
		if net.ParseIP(s) == nil {
			continue
		}
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read %s: no nameserver lines", path)
	}
	return out, nil
}
