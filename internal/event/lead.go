package event

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
)

var leadEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// LeadID returns the id of the lead a tenant knows as userID: "ld_" and 26
// characters of base32 of the first 128 bits of SHA-256(len(tenant),
// tenant, userID).
// It is stable forever; lead shards, the API and the visitor shards derive
// it independently (DESIGN.md §6).
func LeadID(tenant, userID string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(tenant)))])
	h.Write([]byte(tenant))
	h.Write([]byte(userID))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return "ld_" + leadEncoding.EncodeToString(sum[:16])
}

// DecodeRecord decodes one record written by AppendRecord (no frame
// length). The event's byte slices alias b.
func DecodeRecord(b []byte, e *Event) error {
	d := decoder{b: b}
	d.record(e)
	if d.err != nil {
		return fmt.Errorf("decoding record: %w", d.err)
	}
	return nil
}
