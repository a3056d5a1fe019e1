package audit

// WriteAnonymous writes the event of a request without a valid identity
// that does not come through HTTP (an RTSP request refused for a missing,
// invalid, expired or revoked token): anyone can send such requests as
// often as they like. As HTTP does for its own, it cuts every string field
// of ev to 256 bytes and takes a token from the bucket of ev.Remote's
// address and from the bucket of all addresses, which HTTP's requests
// without a valid identity share. Without both, ev is not written and
// WriteAnonymous returns nil: the request is counted in the
// anonymous-summary event of its address instead (see the package
// documentation). Otherwise it returns what Write returns.
//
// Events of requests with a valid identity go to Write, in full.
func (l *Log) WriteAnonymous(ev Event) error {
	ev.clip(anonymousField)
	if !l.anon.admit(&ev) {
		return nil
	}
	return l.Write(ev)
}
