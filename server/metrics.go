package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series of SPEC §6, on a registry of their own (no global state).
type Metrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	tokensIssued  *prometheus.CounterVec
	refreshReuse  prometheus.Counter
	loginFailures *prometheus.CounterVec
	keyRotations  prometheus.Counter
}

// NewMetrics registers Portaria's series and the Go runtime's.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portaria_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portaria_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portaria_tokens_issued_total", Help: "Access tokens issued, by grant.",
		}, []string{"grant"}),
		refreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portaria_refresh_reuse_total", Help: "Reuses of a used refresh token (each revoked its family).",
		}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portaria_login_failures_total", Help: "Failed logins by reason (credentials, otp, throttled).",
		}, []string{"reason"}),
		keyRotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portaria_key_rotations_total", Help: "Signing keys this instance saw become active.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.tokensIssued, m.refreshReuse, m.loginFailures, m.keyRotations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records one answered request.
func (m *Metrics) observe(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// TokenIssued counts an access token issued through grant.
func (m *Metrics) TokenIssued(grant string) {
	if m != nil {
		m.tokensIssued.WithLabelValues(grant).Inc()
	}
}

// RefreshReuse counts a detected refresh-token reuse.
func (m *Metrics) RefreshReuse() {
	if m != nil {
		m.refreshReuse.Inc()
	}
}

// LoginFailure counts a failed login.
func (m *Metrics) LoginFailure(reason string) {
	if m != nil {
		m.loginFailures.WithLabelValues(reason).Inc()
	}
}

// KeyRotation counts a signing key that became active.
func (m *Metrics) KeyRotation() {
	if m != nil {
		m.keyRotations.Inc()
	}
}

// handler serves the Prometheus exposition format.
func (m *Metrics) handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
