package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// FitError says why no node could take a pod, in upstream's wording:
// "0/3 nodes are available: 2 Insufficient memory, 1 node(s) had untolerated taint {k: v}."
type FitError struct {
	NumNodes int
	Reasons  map[string]int
}

func (e *FitError) Error() string {
	type rc struct {
		r string
		n int
	}
	var list []rc
	for r, n := range e.Reasons {
		list = append(list, rc{r, n})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].r < list[j].r
	})
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = fmt.Sprintf("%d %s", x.n, x.r)
	}
	if len(parts) == 0 {
		return fmt.Sprintf("0/%d nodes are available.", e.NumNodes)
	}
	return fmt.Sprintf("0/%d nodes are available: %s.", e.NumNodes, strings.Join(parts, ", "))
}

// numFeasibleToFind is upstream's adaptive percentageOfNodesToScore: in big
// clusters stop filtering once enough feasible nodes are found.
func numFeasibleToFind(all int, pct int32) int {
	if all < 100 {
		return all
	}
	if pct <= 0 {
		pct = int32(50 - all/125)
		if pct < 5 {
			pct = 5
		}
	}
	n := all * int(pct) / 100
	if n < 100 {
		n = 100
	}
	return n
}

type candidate struct {
	n      *nodeInfo
	spread int // pods of the same controller on the node
	topo   int
}

// schedule picks a node for pod from the cache. The caller holds no lock.
func (s *Scheduler) schedule(pod *corev1.Pod) (string, error) {
	c := s.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	nodes := c.list
	if len(nodes) == 0 {
		return "", &FitError{NumNodes: 0}
	}
	req, nz := podRequests(pod)
	var spread []spreadState
	if len(pod.Spec.TopologySpreadConstraints) > 0 {
		spread = buildSpread(pod, nodes)
	}
	owner := controllerUID(pod)
	want := numFeasibleToFind(len(nodes), s.opts.PercentageOfNodesToScore)
	if len(spread) > 0 {
		want = len(nodes)
	}
	feasible := s.feasibleBuf[:0]
	var fe *FitError
	start := s.nextStart % len(nodes)
	checked := 0
	for i := 0; i < len(nodes) && len(feasible) < want; i++ {
		n := nodes[(start+i)%len(nodes)]
		checked++
		reasons := filterNode(pod, req, n)
		if len(reasons) == 0 && spread != nil && !spreadFits(spread, n.node) {
			reasons = []string{reasonSpread}
		}
		if len(reasons) > 0 {
			if fe == nil {
				fe = &FitError{NumNodes: len(nodes), Reasons: map[string]int{}}
			}
			for _, r := range reasons {
				fe.Reasons[r]++
			}
			continue
		}
		cd := candidate{n: n}
		if owner != "" {
			cd.spread = n.owners[owner]
		}
		if spread != nil {
			cd.topo = spreadCount(spread, n.node)
		}
		feasible = append(feasible, cd)
	}
	s.nextStart = start + checked
	s.feasibleBuf = feasible
	if len(feasible) == 0 {
		return "", fe
	}
	if len(feasible) == 1 {
		return feasible[0].n.name, nil
	}
	maxSpread, maxTopo := 0, 0
	for _, cd := range feasible {
		maxSpread = max(maxSpread, cd.spread)
		maxTopo = max(maxTopo, cd.topo)
	}
	best, bestScore, ties := "", int64(-1), 0
	for _, cd := range feasible {
		score := leastAllocated(cd.n, nz)
		if maxSpread > 0 {
			score += int64(maxSpread-cd.spread) * 100 / int64(maxSpread)
		} else {
			score += 100
		}
		if maxTopo > 0 {
			score += 2 * int64(maxTopo-cd.topo) * 100 / int64(maxTopo)
		}
		switch {
		case score > bestScore:
			best, bestScore, ties = cd.n.name, score, 1
		case score == bestScore:
			// Reservoir sampling among equal scores so ties spread out.
			ties++
			if rand.IntN(ties) == 0 {
				best = cd.n.name
			}
		}
	}
	return best, nil
}

// leastAllocated scores 0-100: the free share of cpu and memory after placing the pod.
func leastAllocated(n *nodeInfo, nz resources) int64 {
	free := func(alloc, used int64) int64 {
		if alloc <= 0 || used > alloc {
			return 0
		}
		return (alloc - used) * 100 / alloc
	}
	cpu := free(n.allocatable.milliCPU, n.nonZero.milliCPU+nz.milliCPU)
	mem := free(n.allocatable.memory, n.nonZero.memory+nz.memory)
	return (cpu + mem) / 2
}
