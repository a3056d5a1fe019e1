//go:build !linux

package whip

import (
	"errors"
	"net/netip"
)

const segmentationSupported = false

var errNoSegmentation = errors.New("udp segmentation is Linux only")

func (c *BatchConn) sendSegments([]byte, int, netip.AddrPort) error { return errNoSegmentation }

func segmentationRefused(err error) bool { return err == errNoSegmentation }
