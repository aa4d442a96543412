// Package fleet runs fault-injecting servers on loopback: N HTTP endpoints
// and N gRPC endpoints (grpc.testing.TestService), each following a
// Schedule of Behaviors over time — latency distributions, 5xx, 429 with
// Retry-After, gRPC Unavailable and ResourceExhausted with pushback,
// connection refused (the listener is closed), resets mid-body, hanging,
// and capacity limits with a bounded queue.
//
//	f, err := fleet.Start(fleet.Config{HTTP: 3, Schedule: s})
//	defer f.Close()
//	f.Begin() // the schedule's clock starts now
//
// Every endpoint counts the requests that reached it (Arrivals).
package fleet
