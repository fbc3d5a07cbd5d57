package datapath

import (
	"fmt"
	"net"
)

func frontendString(k svcKey) string {
	scope := "internal"
	if k.Scope == scopeExternal {
		scope = "external"
	}
	return fmt.Sprintf("%s:%d/%s (%s)", net.IP(k.VIP[:]), ntohs(k.Port), protoName(k.Proto), scope)
}
