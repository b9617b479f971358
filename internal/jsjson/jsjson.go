// Package jsjson reads JSON the way JavaScript does and writes it the way
// JavaScript's JSON.stringify does, so that Go can check a signature made
// over JSON.stringify(value) (the ERP.net Marketplace's lifecycle events).
//
// Stringify(raw) is JSON.stringify(JSON.parse(raw)) for every document
// this package accepts: no insignificant space; object members in
// JavaScript's property order (integer-like keys first, ascending, then the
// others in the order received); strings escaped only where JSON.stringify
// escapes them (quote, backslash, control characters; never '/', '<', '>',
// '&', U+2028 or U+2029); numbers in JavaScript's shortest form (1e+21,
// 1.5e-7, -0 as 0). An object with a key given twice is refused: JSON.parse
// would keep the last value, and a Go reader of the same bytes might not.
package jsjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/erpnetgo/auth/internal/redact"
)

// Kind is the type of a Value.
type Kind byte

// Kinds of Value.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a parsed JSON value. Object members keep the order they were
// received in.
type Value struct {
	Kind  Kind
	Bool  bool
	Num   float64 // as JavaScript reads it (±Inf when out of range)
	Str   string
	Items []*Value // Array
	Keys  []string // Object, in the order received
	Vals  []*Value // Object, Vals[i] is Keys[i]'s value
}

// Get returns the member key of an object, or nil.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != Object {
		return nil
	}
	for i, k := range v.Keys {
		if k == key {
			return v.Vals[i]
		}
	}
	return nil
}

// maxDepth bounds nesting, so that a hostile document cannot exhaust the
// stack.
const maxDepth = 64

// ErrSyntax is wrapped by every error of Parse.
var ErrSyntax = errors.New("jsjson: not a JSON document this package accepts")

// Parse reads one JSON document (surrounding space allowed).
func Parse(raw []byte) (*Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the document", ErrSyntax)
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (*Value, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrSyntax, maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	switch t := tok.(type) {
	case nil:
		return &Value{Kind: Null}, nil
	case bool:
		return &Value{Kind: Bool, Bool: t}, nil
	case string:
		return &Value{Kind: String, Str: t}, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%w: bad number", ErrSyntax)
		}
		return &Value{Kind: Number, Num: f}, nil // out of range: ±Inf (or 0), as JavaScript
	case json.Delim:
		switch t {
		case '[':
			v := &Value{Kind: Array}
			for dec.More() {
				item, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.Items = append(v.Items, item)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
			}
			return v, nil
		case '{':
			v := &Value{Kind: Object}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
				}
				k, _ := kt.(string)
				if seen[k] {
					return nil, fmt.Errorf("%w: key %q given twice", ErrSyntax, redact.Truncate(k, 40))
				}
				seen[k] = true
				val, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.Keys = append(v.Keys, k)
				v.Vals = append(v.Vals, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: unexpected token", ErrSyntax)
}

// Stringify returns JSON.stringify(JSON.parse(raw)).
func Stringify(raw []byte) ([]byte, error) {
	v, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return v.Append(nil), nil
}

// Append appends JSON.stringify(v) to b.
func (v *Value) Append(b []byte) []byte {
	switch v.Kind {
	case Null:
		return append(b, "null"...)
	case Bool:
		return strconv.AppendBool(b, v.Bool)
	case Number:
		return AppendNumber(b, v.Num)
	case String:
		return AppendString(b, v.Str)
	case Array:
		b = append(b, '[')
		for i, it := range v.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = it.Append(b)
		}
		return append(b, ']')
	}
	b = append(b, '{')
	for i, j := range propertyOrder(v.Keys) {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, v.Keys[j])
		b = append(b, ':')
		b = v.Vals[j].Append(b)
	}
	return append(b, '}')
}

// propertyOrder returns the indexes of keys in JavaScript's own-property
// order: array indexes (canonical integers up to 2^32-2) ascending, then
// the other keys in insertion order.
func propertyOrder(keys []string) []int {
	idx := make([]int, 0, len(keys))
	var ints []int
	for i, k := range keys {
		if _, ok := arrayIndex(k); ok {
			ints = append(ints, i)
		} else {
			idx = append(idx, i)
		}
	}
	if len(ints) == 0 {
		return idx
	}
	slices.SortFunc(ints, func(a, b int) int {
		x, _ := arrayIndex(keys[a])
		y, _ := arrayIndex(keys[b])
		return int(x) - int(y)
	})
	return append(ints, idx...)
}

// arrayIndex reports whether k is a canonical array index ("0", "17", not
// "017" or "-1"), below 2^32-1.
func arrayIndex(k string) (int64, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(k, 10, 64)
	if err != nil || n < 0 || n >= math.MaxUint32 {
		return 0, false
	}
	return n, true
}

// AppendString appends s quoted as JSON.stringify quotes it.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, "\ufffd"...) // as a JavaScript reader decodes a bad byte
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
	}
	return append(b, '"')
}

// AppendNumber appends f as JavaScript's Number.prototype.toString (and so
// JSON.stringify) writes it; a non-finite number is null.
func AppendNumber(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return append(b, "null"...)
	case f == 0:
		return append(b, '0')
	case f < 0:
		b = append(b, '-')
		f = -f
	}
	// Shortest digits that read back as f, and the exponent: f = 0.d × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±x
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	n, k := x+1, len(digits)
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for range -n {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b
}
