package seal

import (
	"bytes"
	"errors"
	"testing"
)

func k(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func TestRoundTripAndRotation(t *testing.T) {
	old, err := New(k(1, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealedOld := old.Seal([]byte("hello"), []byte("aad"))
	if bytes.Contains(sealedOld, []byte("hello")) {
		t.Fatal("plaintext visible in sealed value")
	}
	rotated, err := New(k(2, 16), k(1, 32))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := rotated.Open(sealedOld, []byte("aad"))
	if err != nil || string(pt) != "hello" {
		t.Fatalf("rotated ring cannot open old value: %q %v", pt, err)
	}
	sealedNew := rotated.Seal([]byte("world"), nil)
	if _, err := old.Open(sealedNew, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("old ring opened a value sealed with a key it does not have: %v", err)
	}
}

func TestRejectsTamperingAndBadInput(t *testing.T) {
	s, _ := New(k(3, 24))
	v := s.Seal([]byte("secret"), []byte("a"))
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 0x40
		if _, err := s.Open(bad, []byte("a")); !errors.Is(err, ErrOpen) {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := s.Open(v, []byte("b")); !errors.Is(err, ErrOpen) {
		t.Fatal("wrong associated data accepted")
	}
	for _, in := range [][]byte{nil, {}, {1}, v[:len(v)-1]} {
		if _, err := s.Open(in, []byte("a")); !errors.Is(err, ErrOpen) {
			t.Fatalf("short input %v accepted", in)
		}
	}
	if _, err := New(); err == nil {
		t.Fatal("no keys accepted")
	}
	if _, err := New(k(1, 31)); err == nil {
		t.Fatal("31-byte key accepted")
	}
}
