package datapath

import (
	"fmt"
	"net"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Drift is one difference between the maps and what the API says.
type Drift struct {
	Frontend string // VIP:port/proto (scope)
	Service  string // namespace/name:port, when known
	Problem  string
}

func (d Drift) String() string {
	if d.Service != "" {
		return fmt.Sprintf("%s [%s]: %s", d.Frontend, d.Service, d.Problem)
	}
	return fmt.Sprintf("%s: %s", d.Frontend, d.Problem)
}

// Verify compares the maps with the Services and EndpointSlices. cfg supplies NodeName,
// NodePortRange and NodeIPs; with no NodeIPs they are inferred from the external frontends
// in the maps that are no Service's external IP.
func Verify(m *Maps, cfg Config, svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]Drift, error) {
	actual, err := m.Frontends()
	if err != nil {
		return nil, err
	}
	if len(cfg.NodeIPs) == 0 {
		cfg.NodeIPs = inferNodeIPs(actual, svcs)
	}
	c, pr, _, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tr := translator{cfg: c, nodePort: pr}
	bySvc := map[nsName][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices {
		n := nsName{sl.Namespace, sl.Labels[serviceLabel]}
		bySvc[n] = append(bySvc[n], sl)
	}
	type want struct {
		service  string
		backends []string
	}
	wanted := map[string]want{}
	var drifts []Drift
	for _, svc := range svcs {
		specs, err := tr.desired(svc, bySvc[nsName{svc.Namespace, svc.Name}])
		if err != nil {
			drifts = append(drifts, Drift{Frontend: "-", Service: svc.Namespace + "/" + svc.Name, Problem: "invalid Service: " + err.Error()})
			continue
		}
		for _, g := range specs {
			var bs []string
			for _, b := range g.backends {
				bs = append(bs, addrPort(b.Addr, b.Port))
			}
			sort.Strings(bs)
			for _, fk := range g.frontends {
				wanted[frontendString(fk)] = want{service: g.key.String(), backends: bs}
			}
		}
	}
	seen := map[string]bool{}
	for _, f := range actual {
		key := fmt.Sprintf("%s/%s (%s)", f.Address, f.Protocol, f.Scope)
		seen[key] = true
		w, ok := wanted[key]
		if !ok {
			drifts = append(drifts, Drift{Frontend: key, Problem: "stale: in the maps but no Service has it"})
			continue
		}
		if f.Count != len(w.backends) {
			drifts = append(drifts, Drift{Frontend: key, Service: w.service, Problem: fmt.Sprintf("backend count %d, want %d", f.Count, len(w.backends))})
		}
		if got := strings.Join(f.Backends, ","); len(w.backends) <= MaglevM && got != strings.Join(w.backends, ",") {
			drifts = append(drifts, Drift{Frontend: key, Service: w.service, Problem: fmt.Sprintf("backends [%s], want [%s]", got, strings.Join(w.backends, ","))})
		}
	}
	for key, w := range wanted {
		if !seen[key] {
			drifts = append(drifts, Drift{Frontend: key, Service: w.service, Problem: "missing from the maps"})
		}
	}
	sort.Slice(drifts, func(i, j int) bool { return drifts[i].String() < drifts[j].String() })
	return drifts, nil
}

func inferNodeIPs(actual []Frontend, svcs []*corev1.Service) []net.IP {
	ext := map[string]bool{}
	for _, s := range svcs {
		for _, ip := range s.Spec.ExternalIPs {
			ext[ip] = true
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ext[ing.IP] = true
		}
	}
	seen := map[string]bool{}
	var out []net.IP
	for _, f := range actual {
		host, _, err := net.SplitHostPort(f.Address)
		if err != nil || f.Scope != "external" || ext[host] || seen[host] {
			continue
		}
		seen[host] = true
		out = append(out, net.ParseIP(host))
	}
	return out
}
