package whip

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client makes WHIP and WHEP requests.
type Client struct {
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
	// Token is sent as the bearer token.
	Token string
	// TokenSource, when set, is asked for a token before each request
	// instead (for tokens minted with a short lifetime).
	TokenSource func() (string, error)
}

// Resource is a session created on a WHIP or WHEP endpoint.
type Resource struct {
	// Answer is the SDP answer.
	Answer string
	// URL is the session's absolute URL, for PATCH and DELETE.
	URL string
	// ETag identifies the ICE session.
	ETag string
}

// StatusError is a non-success HTTP answer.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), strings.TrimSpace(e.Body))
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	tok := c.Token
	if c.TokenSource != nil {
		var err error
		if tok, err = c.TokenSource(); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	h := c.HTTP
	if h == nil {
		h = http.DefaultClient
	}
	return h.Do(req)
}

// Offer posts an SDP offer to a WHIP or WHEP endpoint.
func (c *Client) Offer(ctx context.Context, endpoint, offer string) (Resource, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return Resource{}, err
	}
	req.Header.Set("Content-Type", ContentTypeSDP)
	res, err := c.do(req)
	if err != nil {
		return Resource{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxBody))
	if err != nil {
		return Resource{}, err
	}
	if res.StatusCode != http.StatusCreated {
		return Resource{}, &StatusError{Status: res.StatusCode, Body: string(body)}
	}
	loc, err := res.Location()
	if err != nil {
		return Resource{}, fmt.Errorf("answer has no usable Location header: %w", err)
	}
	return Resource{Answer: string(body), URL: loc.String(), ETag: res.Header.Get("ETag")}, nil
}

// Trickle sends ICE candidates to a session.
func (c *Client) Trickle(ctx context.Context, r Resource, frag []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, r.URL, bytes.NewReader(frag))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ContentTypeTrickle)
	if r.ETag != "" {
		req.Header.Set("If-Match", r.ETag)
	}
	return c.expect(req, http.StatusNoContent, http.StatusOK)
}

// Delete ends a session.
func (c *Client) Delete(ctx context.Context, r Resource) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.URL, nil)
	if err != nil {
		return err
	}
	return c.expect(req, http.StatusOK, http.StatusNoContent)
}

// Forget asks the SFU at base to take an offline source off its list
// (DELETE /v1/sources/<source>): a camera removed for good. A source the SFU
// does not list is not an error.
func (c *Client) Forget(ctx context.Context, base, source string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimSuffix(base, "/")+"/v1/sources/"+url.PathEscape(source), nil)
	if err != nil {
		return err
	}
	return c.expect(req, http.StatusNoContent, http.StatusNotFound)
}

func (c *Client) expect(req *http.Request, ok ...int) error {
	res, err := c.do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, MaxBody))
	for _, s := range ok {
		if res.StatusCode == s {
			return nil
		}
	}
	return &StatusError{Status: res.StatusCode, Body: string(body)}
}

// Endpoint returns base/<source>/<kind>, kind being "whip" or "whep".
func Endpoint(base, source, kind string) string {
	return strings.TrimSuffix(base, "/") + "/" + url.PathEscape(source) + "/" + kind
}

// Get fetches a URL with the client's token and returns the body of a 200.
func (c *Client) Get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, &StatusError{Status: res.StatusCode, Body: string(body)}
	}
	return body, nil
}
