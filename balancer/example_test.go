package balancer_test

import (
	"fmt"
	"time"

	"github.com/floodgate/floodgate/balancer"
)

// The control plane keeps one BackendState per backend and one PoolState per
// pool across generations; each generation is an immutable Pool.
func ExampleNewPool() {
	ps := balancer.NewPoolState("shop")
	a, b, c := balancer.NewBackendState("shop/a"), balancer.NewBackendState("shop/b"), balancer.NewBackendState("shop/c")
	pool, err := balancer.NewPool(balancer.PoolOptions{
		Name:  "shop",
		State: ps,
		Backends: []balancer.BackendSpec{
			{Address: "10.0.0.1:8080", Weight: 5, State: a},
			{Address: "10.0.0.2:8080", Weight: 1, State: b},
			{Address: "10.0.0.3:8080", Weight: 1, State: c},
		},
		MaxConnsPerBackend: 512,
		QueueMax:           1000,
		QueueTimeout:       800 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	var order []int
	for range 7 {
		be, err := pool.Acquire(nil)
		if err != nil {
			panic(err) // the proxy maps the error to a status instead
		}
		order = append(order, be.Index)
		be.State.Report(true)
		be.Release()
	}
	fmt.Println(order)

	b.SetProbeUp(false) // from the health checker: no rebuild needed
	order = order[:0]
	for range 6 {
		be, _ := pool.Pick()
		order = append(order, be.Index)
	}
	fmt.Println(order)
	// Output:
	// [0 0 1 0 2 0 0]
	// [0 0 0 2 0 0]
}
