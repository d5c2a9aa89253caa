package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Listen opens a TCP listener on addr and, when addrFile is set, writes the
// bound address there (through a rename, so a reader polling for the file
// never sees it half written). Tests and scripts start services on port 0 and
// read the file to learn the port.
func Listen(addr, addrFile string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	if addrFile == "" {
		return ln, nil
	}
	if err := writeAtomic(addrFile, ln.Addr().String()); err != nil {
		_ = ln.Close() // the write error is the one worth reporting
		return nil, fmt.Errorf("write address file: %w", err)
	}
	return ln, nil
}

func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op once renamed
	if _, err := tmp.WriteString(content); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
