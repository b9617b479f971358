package redisstore

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestSlotAndTag(t *testing.T) {
	if c := crc16("123456789"); c != 0x31C3 {
		t.Fatalf("crc16 check value = %#x, want 0x31c3", c)
	}
	// Slots as CLUSTER KEYSLOT gives them (redis-server 7.0).
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "{user1000}.following": 3443, "user1000": 3443,
		"{}foo": 9500, "foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "{bar": 4015, "a}b{c": 13587,
	} {
		if got := slot(key); got != want {
			t.Errorf("slot(%q) = %d, want %d", key, got, want)
		}
	}
	if slot("{}foo") == slot("foo") || slot("foo{}{bar}") == slot("bar") {
		t.Error("an empty tag must hash the whole key")
	}
	// Every slot has a tag of at most four characters that lands in it.
	tags := slotTags()
	for s, n := range tags {
		tag := strconv.FormatUint(uint64(n-1), 36)
		if n == 0 || len(tag) > 4 || slot("{"+tag+"}x") != s {
			t.Fatalf("slot %d: tag %q", s, tag)
		}
	}
	for _, k := range []string{"erpnet:authcode:erpnetgo/authcode/v1/x/y/session/abc", "app:{t}:k", "a}b{c"} {
		if got, want := slot("p:lock:{"+slotTag(k)+"}"+k), slot(k); got != want {
			t.Errorf("lock of %q in slot %d, session in %d", k, got, want)
		}
	}
}

func TestOwnClients(t *testing.T) {
	c, err := newClient("redis+sentinel://master-user:master-pw@127.0.0.1:1/3?master_name=m&addr=127.0.0.1:2&sentinel_username=su&sentinel_password=spw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fc, ok := c.(*redis.Client)
	if !ok {
		t.Fatalf("sentinel URL gave a %T", c)
	}
	if o := fc.Options(); o.Username != "master-user" || o.Password != "master-pw" || o.DB != 3 || !o.ContextTimeoutEnabled || o.ReadTimeout != ownReadTimeout {
		t.Errorf("master options: user %q, db %d, ctx %v, read timeout %v", o.Username, o.DB, o.ContextTimeoutEnabled, o.ReadTimeout)
	}
	opt, err := failoverOptions("x", mustURL(t, "redis://master-user:master-pw@127.0.0.1:1?master_name=m&addr=127.0.0.1:2&sentinel_username=su&sentinel_password=spw"))
	if err != nil {
		t.Fatal(err)
	}
	if opt.SentinelUsername != "su" || opt.SentinelPassword != "spw" || len(opt.SentinelAddrs) != 2 || opt.MasterName != "m" {
		t.Errorf("sentinel options: %q %q %v %q", opt.SentinelUsername, opt.SentinelPassword, opt.SentinelAddrs, opt.MasterName)
	}
	cc, err := newClient("redis+cluster://:pw@127.0.0.1:1?addr=127.0.0.1:2&read_timeout=7s")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl, ok := cc.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("cluster URL gave a %T", cc)
	}
	if o := cl.Options(); len(o.Addrs) != 2 || o.Password != "pw" || o.ReadTimeout.Seconds() != 7 || !honoursDeadlines(cl) {
		t.Errorf("cluster options: %v, read timeout %v", o.Addrs, o.ReadTimeout)
	}
	user := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer user.Close()
	if honoursDeadlines(user) {
		t.Error("a cluster client with routing policies fetches COMMAND under its own deadline")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
