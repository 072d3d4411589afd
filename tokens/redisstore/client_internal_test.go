package redisstore

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The Sentinel form of the Redis URL: what each part of it becomes, and that a mistake is
// refused with a message that never quotes a password.
func TestParseSentinelURL(t *testing.T) {
	opts, err := parseURL("redis://app:s3cret@10.0.0.1:26379/2?master_name=tokens&addr=10.0.0.2:26379&addr=[::1]:26380")
	if err != nil {
		t.Fatal(err)
	}
	if opts.MasterName != "tokens" {
		t.Errorf("master name %q, want tokens", opts.MasterName)
	}
	if want := []string{"10.0.0.1:26379", "10.0.0.2:26379", "[::1]:26380"}; !slices.Equal(opts.Addrs, want) {
		t.Errorf("sentinels %v, want %v", opts.Addrs, want)
	}
	if opts.Username != "app" || opts.Password != "s3cret" || opts.DB != 2 {
		t.Errorf("master credentials and database: %q %q %d", opts.Username, opts.Password, opts.DB)
	}
	if opts.SentinelUsername != "" || opts.SentinelPassword != "" {
		t.Errorf("the master's credentials must not be sent to the Sentinels")
	}
	// The short timeouts hold for the Sentinel form too.
	if opts.ReadTimeout != 500*time.Millisecond || opts.DialTimeout != time.Second || opts.MaxRetries != -1 {
		t.Errorf("timeouts: read %v dial %v retries %d", opts.ReadTimeout, opts.DialTimeout, opts.MaxRetries)
	}
}

func TestParseSentinelURLWithSentinelCredentialsDatabaseParameterAndTLS(t *testing.T) {
	opts, err := parseURL("rediss://:s3cret@sentinel.example:26379?master_name=m&db=3&sentinel_username=watch&sentinel_password=other")
	if err != nil {
		t.Fatal(err)
	}
	if opts.DB != 3 || opts.Password != "s3cret" || opts.SentinelUsername != "watch" || opts.SentinelPassword != "other" {
		t.Errorf("got db %d password %q sentinel %q/%q", opts.DB, opts.Password, opts.SentinelUsername, opts.SentinelPassword)
	}
	// The master is found at an address the Sentinel gives: TLS must check that address's
	// name, not the Sentinel's.
	if opts.TLSConfig == nil || opts.TLSConfig.ServerName != "" {
		t.Errorf("TLS config %+v: want TLS with the server name taken from each address", opts.TLSConfig)
	}
}

func TestParseSentinelURLRefusals(t *testing.T) {
	tests := []struct{ name, rawURL, want string }{
		{"an empty master name", "redis://:s3cret@h:26379?master_name=", "master_name"},
		{"two master names", "redis://:s3cret@h:26379?master_name=a&master_name=b", "master_name"},
		{"a Sentinel address without a port", "redis://:s3cret@h:26379?master_name=m&addr=s3cret", "not host:port"},
		{"an unknown parameter", "redis://:s3cret@h:26379?master_name=m&s3cret=1", "not a valid Sentinel URL"},
		{"a comma-separated list", "redis://:s3cret@h:26379?master_name=m,h2:26379", "names a Sentinel master"},
		{"a bad scheme", "http://:s3cret@h:26379?master_name=m", "not a valid Sentinel URL"},
		{"a bad database", "redis://:s3cret@h:26379/x?master_name=m", "not a valid Sentinel URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseURL(tt.rawURL)
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error echoes the URL's secret: %v", err)
			}
		})
	}
}

// A URL without master_name is a single node, as before: the Sentinel form is opt-in.
func TestParseURLWithoutMasterNameIsOneNode(t *testing.T) {
	opts, err := parseURL("redis://:s3cret@10.0.0.1:6379/1")
	if err != nil {
		t.Fatal(err)
	}
	if opts.MasterName != "" || !slices.Equal(opts.Addrs, []string{"10.0.0.1:6379"}) || opts.DB != 1 {
		t.Errorf("got master %q addrs %v db %d", opts.MasterName, opts.Addrs, opts.DB)
	}
}
