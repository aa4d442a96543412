package retry

import (
	"crypto/rand"
	"encoding/hex"
)

// NewIdempotencyKey returns a new random version 4 UUID in its text form
// ("f47ac10b-58cc-4372-a567-0e02b2c3d479"): 122 random bits from
// crypto/rand, for an Idempotency-Key header. Generate one per logical call,
// before the first attempt, and send the same key with every attempt, so
// that the server can tell a retry from a new request. It is safe for
// concurrent use.
func NewIdempotencyKey() string {
	var u [16]byte
	// Read never fails: crypto/rand crashes the program rather than
	// return weak bytes.
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562)
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
