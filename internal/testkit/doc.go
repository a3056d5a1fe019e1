// Package testkit holds helpers shared by integration tests that talk to real peers on
// loopback: ffmpeg and ffprobe (pushing a generated test pattern, probing a stream), free
// loopback ports, waiting on a condition with a deadline, and headless Chromium driven by the
// playwright-core scripts in test/e2e (RunNode, Wall).
//
// The peers are installed by `make test` (scripts/deps.sh test).
package testkit
