package api

import (
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ConnLimits cap the connections a server holds open: in all, and per
// source address (an IPv6 source is its /64), so that one client's slow
// connections cannot exhaust the file descriptors that health checks and
// every other client need. Trusted proxies are exempt per source; the
// clients behind them are capped per request (see limitBehindProxies).
type ConnLimits struct {
	Max, PerSource int
}

// Listen wraps l so that a connection over the limits is closed as soon as
// it is accepted.
func (s *Server) Listen(l net.Listener, lim ConnLimits) net.Listener {
	s.MaxPerSource = lim.PerSource
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dicomseal_connections_refused_total",
		Help: "Connections closed on accept: over --max-conns (limit=total) or --max-conns-per-source (limit=source).",
	}, []string{"limit"})
	open := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dicomseal_connections_open", Help: "Client connections open.",
	})
	s.metrics.registry.MustRegister(refused, open)
	return &limitListener{Listener: l, lim: lim, exempt: s.TrustedProxies, perSource: map[netip.Prefix]int{},
		refusedTotal: refused.WithLabelValues("total"), refusedSource: refused.WithLabelValues("source"), open: open}
}

type limitListener struct {
	net.Listener
	lim    ConnLimits
	exempt []netip.Prefix

	mu        sync.Mutex
	total     int
	perSource map[netip.Prefix]int

	refusedTotal, refusedSource prometheus.Counter
	open                        prometheus.Gauge
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, peer, keyed := sourceKey(c.RemoteAddr())
		if keyed && containsAddr(l.exempt, peer) {
			keyed = false
		}
		l.mu.Lock()
		switch {
		case l.lim.Max > 0 && l.total >= l.lim.Max:
			l.mu.Unlock()
			l.refusedTotal.Inc()
			c.Close()
			continue
		case keyed && l.lim.PerSource > 0 && l.perSource[key] >= l.lim.PerSource:
			l.mu.Unlock()
			l.refusedSource.Inc()
			c.Close()
			continue
		}
		l.total++
		if keyed {
			l.perSource[key]++
		}
		l.mu.Unlock()
		l.open.Inc()
		return &limitedConn{Conn: c, release: func() { l.release(key, keyed) }}, nil
	}
}

func (l *limitListener) release(key netip.Prefix, keyed bool) {
	l.mu.Lock()
	l.total--
	if keyed {
		if l.perSource[key]--; l.perSource[key] <= 0 {
			delete(l.perSource, key)
		}
	}
	l.mu.Unlock()
	l.open.Dec()
}

// sourceKey is the prefix a connection counts against (see sourcePrefix)
// and its peer's own address.
func sourceKey(a net.Addr) (netip.Prefix, netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}, netip.Addr{}, false
	}
	ip = ip.Unmap()
	return sourcePrefix(ip), ip, true
}

// sourcePrefix is what one source is, for the limits: an IPv4 address, or
// the /64 of an IPv6 one (a host usually holds a whole /64, so rotating
// addresses inside it must not multiply its allowance).
func sourcePrefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps net/http's clean close of a refused request (FIN, a
// short wait, then close): without it the answer may be lost to a reset
// while the client is still sending.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the kernel's sendfile path for verified retrievals that
// were spooled to a file.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
