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

func TestOpenInPlace(t *testing.T) {
	s, _ := New(k(4, 32))
	v := s.Seal([]byte("session-id"), []byte("a"))
	buf := bytes.Clone(v)
	pt, err := s.OpenInPlace(buf, []byte("a"))
	if err != nil || string(pt) != "session-id" {
		t.Fatalf("OpenInPlace = %q, %v", pt, err)
	}
	if &pt[0] != &buf[1+idLen+nonceLen] {
		t.Fatal("plaintext not written over the sealed value")
	}
	aad := []byte("a")
	if n := testing.AllocsPerRun(100, func() {
		copy(buf, v)
		if _, err := s.OpenInPlace(buf, aad); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("OpenInPlace allocates %v times", n)
	}
	bad := bytes.Clone(v)
	bad[len(bad)-1] ^= 1
	if _, err := s.OpenInPlace(bad, []byte("a")); !errors.Is(err, ErrOpen) {
		t.Fatal("tampered value opened in place")
	}
}
