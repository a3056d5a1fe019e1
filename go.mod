module fieldvideo

go 1.26.8

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/pion/rtp v1.10.6
	go.yaml.in/yaml/v3 v3.0.5
)

require github.com/pion/randutil v0.1.0 // indirect
