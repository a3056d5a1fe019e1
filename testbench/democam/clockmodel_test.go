package main

import (
	"flag"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
)

func TestParsePPM(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  bool
	}{
		{"80ppm", 80, false},
		{"-60ppm", -60, false},
		{"+90 ppm", 90, false},
		{"12.5", 12.5, false},
		{" 0 ", 0, false},
		{"ppm", 0, true},
		{"fast", 0, true},
		{"NaN", 0, true},
		{"inf", 0, true},
	} {
		got, err := ParsePPM(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParsePPM(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "parts per million") {
			t.Errorf("ParsePPM(%q) error %q does not say what to write", tc.in, err)
		}
	}
}

func TestClockModelSet(t *testing.T) {
	var m ClockModel
	for _, kv := range [][2]string{
		{"offset", "-2.3s"}, {"drift", "-60ppm"}, {"wall", "ntp"}, {"sr", "false"},
		{"sr-interval", "2s"}, {"delay", "40ms"}, {"jitter", "5ms"}, {"sei", "true"},
		{"spike-every", "30s"}, {"spike-for", "3s"}, {"spike-delay", "600ms"},
	} {
		if err := m.Set(kv[0], kv[1]); err != nil {
			t.Fatalf("Set(%s, %s): %v", kv[0], kv[1], err)
		}
	}
	want := ClockModel{Offset: -2300 * time.Millisecond, DriftPPM: -60, Wall: WallNTP, NoSenderReports: true,
		SRInterval: 2 * time.Second, Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, TruthSEI: true,
		SpikeEvery: 30 * time.Second, SpikeFor: 3 * time.Second, SpikeDelay: 600 * time.Millisecond}
	if m != want {
		t.Errorf("model = %+v, want %+v", m, want)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	for _, tc := range []struct{ key, value, want string }{
		{"speed", "1", "unknown camera clock setting"},
		{"offset", "soon", "offset"},
		{"wall", "gps", "use free or ntp"},
		{"sr", "maybe", "sr"},
		{"drift", "x", "parts per million"},
	} {
		if err := m.Set(tc.key, tc.value); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%s, %s) error = %v, want one containing %q", tc.key, tc.value, err, tc.want)
		}
	}
}

func TestClockModelValidate(t *testing.T) {
	for _, tc := range []struct {
		m    ClockModel
		want string
	}{
		{ClockModel{Offset: 200 * 365 * 24 * time.Hour}, "clock offset"},
		{ClockModel{DriftPPM: 20000}, "drift"},
		{ClockModel{DriftPPM: math.NaN()}, "drift"},
		{ClockModel{Wall: 7}, "wall clock mode"},
		{ClockModel{SRInterval: time.Millisecond}, "too short"},
		{ClockModel{Delay: -time.Second}, "send delay"},
		{ClockModel{Jitter: time.Hour}, "jitter"},
		{ClockModel{SpikeEvery: time.Second}, "set spike-every and spike-for"},
		{ClockModel{SpikeEvery: time.Second, SpikeFor: 2 * time.Second, SpikeDelay: time.Second}, "spike-for shorter"},
		{ClockModel{SpikeEvery: 2 * time.Second, SpikeFor: time.Second}, "spike delay"},
	} {
		if err := tc.m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", tc.m, err, tc.want)
		}
	}
	if _, err := newPlayer(shortClip(t), 0, ClockModel{DriftPPM: 1e6}); err == nil {
		t.Error("newPlayer accepted a drift of 10⁶ ppm")
	}
}

func TestClockModelTime(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	free := ClockModel{Offset: 1700 * time.Millisecond, DriftPPM: 90}
	locked := ClockModel{Offset: -30 * time.Millisecond, DriftPPM: 90, Wall: WallNTP}
	hour := time.Hour

	// an oscillator 90 ppm fast counts 324 ms too many in an hour.
	if got := free.cameraElapsed(hour); got != hour+324*time.Millisecond {
		t.Errorf("camera time after an hour = %v, want 1h0m0.324s", got)
	}
	if got := free.trueElapsed(free.cameraElapsed(hour)); got != hour {
		t.Errorf("round trip of an hour = %v", got)
	}
	if got := free.wallAt(start, hour).Sub(start.Add(hour)); got != 1700*time.Millisecond+324*time.Millisecond {
		t.Errorf("free-running wall clock after an hour is %v ahead, want 2.024s", got)
	}
	if got := locked.wallAt(start, hour).Sub(start.Add(hour)); got != -30*time.Millisecond {
		t.Errorf("NTP-locked wall clock after an hour is %v ahead, want -30ms", got)
	}
	spiky := ClockModel{Delay: 10 * time.Millisecond, SpikeEvery: 30 * time.Second, SpikeFor: 3 * time.Second, SpikeDelay: 600 * time.Millisecond}
	for _, tc := range []struct{ at, want time.Duration }{
		{0, 10 * time.Millisecond},
		{26999 * time.Millisecond, 10 * time.Millisecond},
		{27 * time.Second, 610 * time.Millisecond},
		{29999 * time.Millisecond, 610 * time.Millisecond},
		{30 * time.Second, 10 * time.Millisecond},
		{58 * time.Second, 610 * time.Millisecond},
	} {
		if got := spiky.sendDelay(tc.at); got != tc.want {
			t.Errorf("send delay at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	if (ClockModel{}).srInterval() != 10*time.Second {
		t.Error("the default sender report interval is not 10 s")
	}
}

func TestNTPTime(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC),
		time.Unix(0, 999999999),
		time.Unix(1, 0),
	} {
		got := ntpTime(at)
		if d := ntp.Decode(got).Sub(at); d < -time.Nanosecond || d > time.Nanosecond {
			t.Errorf("ntpTime(%v) decodes %v off", at, d)
		}
	}
	// a clock never set, in 1969 and 1900: the seconds wrap in their 2³² s era.
	if got, want := ntpTime(time.Unix(-1, 0)), uint64(2208988799)<<32; got != want {
		t.Errorf("ntpTime(1969-12-31T23:59:59) = %#x, want %#x", got, want)
	}
	if got := ntpTime(time.Unix(-2208988800-1, 500000000)); got != uint64(0xffffffff)<<32|0x80000000 {
		t.Errorf("ntpTime(a second before 1900) = %#x", got)
	}
}

func TestCameraClockFlags(t *testing.T) {
	parse := func(args ...string) ([]ClockModel, error) {
		fs := flag.NewFlagSet("democam", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var c clockFlags
		c.register(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return c.models(4)
	}

	got, err := parse("-offset", "1s", "-sei", "-sr=false", "-clock", "2:drift=5ppm,sr=true", "-clock", "4:wall=ntp,offset=0s")
	if err != nil {
		t.Fatal(err)
	}
	base := ClockModel{Offset: time.Second, TruthSEI: true, NoSenderReports: true}
	want := []ClockModel{base, base, base, base}
	want[1].DriftPPM, want[1].NoSenderReports = 5, false
	want[3].Wall, want[3].Offset = WallNTP, 0
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("camera %d: %v, want %v", i+1, got[i], want[i])
		}
	}

	got, err = parse("-profile", "skewed", "-clock", "1:delay=20ms")
	if err != nil {
		t.Fatal(err)
	}
	if got[1].Offset != 1700*time.Millisecond || got[1].DriftPPM != 90 || !got[2].NoSenderReports || got[3].Wall != WallNTP {
		t.Errorf("profile skewed = %v", got)
	}
	if got[0].Delay != 20*time.Millisecond || !got[0].TruthSEI {
		t.Errorf("-clock after -profile: camera 1 = %v, want the profile's model with a 20ms delay", got[0])
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-clock", "offset=1s"}, "start with the camera number"},
		{[]string{"-clock", "0:offset=1s"}, "start with the camera number"},
		{[]string{"-clock", "2:"}, "sets nothing"},
		{[]string{"-clock", "2:offset"}, "not key=value"},
		{[]string{"-clock", "2:colour=red"}, "unknown camera clock setting"},
		{[]string{"-clock", "9:offset=1s"}, "only 4 are served"},
		{[]string{"-drift", "fast"}, "parts per million"},
		{[]string{"-profile", "nope"}, "unknown profile"},
		{[]string{"-delay", "-1s"}, "send delay"},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
