package redisstore

import (
	"strconv"
	"strings"
	"sync"
)

// Redis Cluster puts a key in one of 16384 hash slots: CRC16 (XMODEM) of
// the key modulo 16384, or of its hash tag, the text between the first
// "{" and the first "}" after it, when that text is not empty
// (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags).
// A session's refresh lock carries a hash tag chosen so that it lands in
// the session's own slot, on the session's own master.

const clusterSlots = 16384

// crcTable is CRC-16/XMODEM's table (polynomial 0x1021).
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crcTable[byte(c>>8)^s[i]]
	}
	return c
}

// slot returns key's Redis Cluster hash slot.
func slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// slotTags holds, for every slot, n+1 for the smallest n whose base-36
// text hashes to that slot (at most four characters). It is computed
// once, on first use (about 90,000 CRCs, a few milliseconds).
var slotTags = sync.OnceValue(func() *[clusterSlots]uint32 {
	var t [clusterSlots]uint32
	var buf [8]byte
	for n, left := uint64(0), clusterSlots; left > 0; n++ {
		s := crc16(string(strconv.AppendUint(buf[:0], n, 36))) % clusterSlots
		if t[s] == 0 {
			t[s] = uint32(n + 1)
			left--
		}
	}
	return &t
})

// slotTag returns a short text that, as a hash tag ("{" + tag + "}"),
// puts a key in the same slot as key.
func slotTag(key string) string {
	return strconv.FormatUint(uint64(slotTags()[slot(key)]-1), 36)
}

// checkPrefixTag refuses a Prefix whose braces would change which text
// Redis hashes once a lock's hash tag follows it: a "{" must open a
// non-empty tag that a "}" closes.
func checkPrefixTag(prefix string) error {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return nil
	}
	if j := strings.IndexByte(prefix[i+1:], '}'); j <= 0 {
		return cfgErr("Prefix", `has a "{" that does not open a hash tag: write a tag as {name} (non-empty, closed), or use no braces`)
	}
	return nil
}
