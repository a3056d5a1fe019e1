package auth

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Command implements the "token" subcommand: it parses args and prints one
// signed token to out.
func Command(args []string, secret []byte, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(out)
	role := fs.String("role", string(RoleWall), "role: commander, operator, responder, camera, wall or reviewer")
	sub := fs.String("sub", "", "subject: who holds the token (shown in the audit log)")
	pub := fs.String("publish", "", "comma-separated sources (or patterns like cam-*; {sub} stands for the subject) the holder may publish")
	view := fs.String("view", "", "comma-separated sources (or patterns like *) the holder may view")
	room := fs.String("room", "", "call room (or pattern) the holder may join")
	roomPub := fs.Bool("room-publish", false, "may publish camera, microphone and screen in the room")
	roomSub := fs.Bool("room-subscribe", false, "may receive the others' tracks in the room")
	review := fs.Bool("review", false, "may review recordings (coverage, playback, exports, the recording state), as the reviewer role may")
	recorded := fs.Bool("recorded", false, "the publisher records its sources itself; the SFU does not record them again")
	ttl := fs.Duration("ttl", 12*time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := Claims{Role: Role(*role), Publish: splitList(*pub), View: splitList(*view),
		Room: *room, RoomPublish: *roomPub, RoomSubscribe: *roomSub, Review: *review, Recorded: *recorded}
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: *sub}
	tok, err := Mint(secret, c, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
