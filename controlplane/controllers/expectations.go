package controllers

import (
	"sync"
	"time"
)

// expectationsTTL bounds how long a controller waits for its own writes to
// show up in the cache before it trusts the cache again (as upstream).
const expectationsTTL = 5 * time.Minute

// expectations records, per controller key, the pod creations and deletions
// a controller has issued but not yet observed through its informer. While
// any are outstanding the controller does not compute a new diff, so a
// lagging cache can never make it create or delete twice.
type expectations struct {
	mu sync.Mutex
	m  map[string]*expectation
}

type expectation struct {
	adds int
	dels map[string]struct{} // pod keys expected to disappear
	at   time.Time
}

func newExpectations() *expectations { return &expectations{m: map[string]*expectation{}} }

// satisfied is true when nothing is outstanding (or the record expired).
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	if (x.adds <= 0 && len(x.dels) == 0) || time.Since(x.at) > expectationsTTL {
		return true
	}
	return false
}

func (e *expectations) expect(key string, adds int, dels []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{adds: adds, dels: map[string]struct{}{}, at: time.Now()}
	for _, d := range dels {
		x.dels[d] = struct{}{}
	}
	e.m[key] = x
}

func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds--
	}
}

func (e *expectations) deletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		delete(x.dels, podKey)
	}
}

func (e *expectations) delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
