package hashlists

import "testing"

// TestLists reads the lists: as many distinct hashes as README.md says.
func TestLists(t *testing.T) {
	for _, c := range []struct {
		name string
		get  func() ([][32]byte, error)
		want int
	}{{"Haystack", Haystack, 1400}, {"Frames", Frames, 1551}} {
		hs, err := c.get()
		if err != nil || len(hs) != c.want {
			t.Errorf("%s() = %d hashes, %v; want %d", c.name, len(hs), err, c.want)
		}
	}
}
