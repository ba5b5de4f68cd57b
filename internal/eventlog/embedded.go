package eventlog

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configures an in-process nats-server.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// SyncInterval is how often the file store fsyncs (default durability).
	SyncInterval time.Duration
	// SyncAlways fsyncs on every append (strict durability).
	SyncAlways bool
	// Listen opens a TCP listener on 127.0.0.1 with a random port, so that
	// other processes (or tests) can reach the server. Without it the server
	// is reachable only in-process.
	Listen bool
	// ServerName names the server; it must be stable across restarts of one
	// data directory.
	ServerName string
}

// StartEmbedded starts a JetStream-enabled nats-server in this process and
// waits until it accepts connections.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded nats: store dir must be set")
	}
	opts := &server.Options{
		ServerName:   o.ServerName,
		JetStream:    true,
		StoreDir:     o.StoreDir,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		NoLog:        true,
		NoSigs:       true,
		MaxPayload:   8 << 20,
		DontListen:   !o.Listen,
		Host:         "127.0.0.1",
		Port:         -1,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating embedded nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats server did not become ready in 30s")
	}
	return s, nil
}

// ConnectEmbedded opens an in-process connection to s: no TCP, no loopback.
func ConnectEmbedded(s *server.Server, name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connecting in-process to embedded nats: %w", err)
	}
	return nc, nil
}

// Connect opens a connection to an external NATS server at url.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("connecting to nats at %s: %w", url, err)
	}
	return nc, nil
}
