package jsjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// cases are documents whose JSON.stringify(JSON.parse(doc)) differs from
// what Go's encoding/json (Marshal, Compact or a sorted map) would give.
var cases = []string{
	`{"eventId":"e1","event":"installed","occurredAt":"2026-01-02T03:04:05.678Z"}`,
	"{ \"b\" : 1 ,\n \"a\" : [ 1 , 2 ,{ } , [ ] ] }",
	`{"html":"<b>&amp;</b>","line":"\u2028\u2029","slash":"a\/b","ctl":"\u0001\u001f\b\f\n\r\t","q":"\"\\"}`,
	`{"uni":"\u00e9\u4e2d\ud83d\ude00","raw":"é中😀"}`,
	`{"n":[0,-0,1.0,1e21,1e20,123456789012345678901234,1.5e-7,0.000001,0.0000001,-1.25e-10,3.14159,1E+2,5e-324,1.7976931348623157e308,12345678901234567890]}`,
	`{"b":1,"2":2,"10":3,"1":4,"a":5,"01":6,"-1":7,"4294967294":8,"4294967295":9}`,
	`{"nested":{"z":{"y":[{"x":null,"w":true,"v":false}]}}}`,
	`{"big":1e400,"small":1e-400}`,
	`"just a string"`,
	`[]`,
}

func TestStringifyMatchesNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	script := `const docs = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(docs.map(d => JSON.stringify(JSON.parse(d)))));`
	in, _ := json.Marshal(cases)
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, doc := range cases {
		got, err := Stringify([]byte(doc))
		if err != nil {
			t.Errorf("case %d: %v", i, err)
			continue
		}
		if string(got) != want[i] {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

func TestStringifyKnownOutputs(t *testing.T) {
	// The same checks without node, so they run everywhere.
	for doc, want := range map[string]string{
		`{"b":1, "a":2}`:                `{"b":1,"a":2}`,
		`{"s":"<>&\u2028\/"}`:           "{\"s\":\"<>&\u2028/\"}",
		`{"c":"\u0001"}`:                `{"c":"\u0001"}`,
		`[1.0, 1e21, 1.5e-7, -0, 1e-6]`: `[1,1e+21,1.5e-7,0,0.000001]`,
		`{"b":0,"1":1,"0":2}`:           `{"0":2,"1":1,"b":0}`,
		`{"x":1e999}`:                   `{"x":null}`,
	} {
		got, err := Stringify([]byte(doc))
		if err != nil || string(got) != want {
			t.Errorf("Stringify(%s) = %s, %v; want %s", doc, got, err, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, doc := range []string{
		``, `{`, `{"a":1,"a":2}`, `{"a":1} {}`, `{"a":1}x`, `[1,]`, `{'a':1}`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
	} {
		if _, err := Parse([]byte(doc)); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.30q) = %v; want ErrSyntax", doc, err)
		}
	}
}

func TestGet(t *testing.T) {
	v, err := Parse([]byte(`{"a":{"b":"c"},"B":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Get("a").Get("b"); got == nil || got.Str != "c" {
		t.Fatalf("Get: %+v", got)
	}
	if v.Get("b") != nil || v.Get("a").Get("B") != nil {
		t.Fatal("Get must match keys exactly (case-sensitive)")
	}
}
