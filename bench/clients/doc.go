// Package clients holds the clients the benchmark runs side by side —
// bulwark's and its peers' — each configured as its own documentation
// recommends, behind one small interface: Call sends one request to one
// endpoint and says how it ended.
//
// Every client counts the attempts it puts on the wire (retries
// included) in its innermost transport, so that amplification is
// measured the same way for all of them.
package clients
