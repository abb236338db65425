package pdq

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"

	// Decoders for FromFile: JPEG, PNG, GIF (first frame) and WebP.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/webp"
)

// FromFile decodes the JPEG, PNG, GIF (first frame) or WebP image at path
// and returns its PDQ hash and quality as FromImage does. EXIF orientation
// is ignored, as by the reference. An error names the file.
func FromFile(path string) (Hash, int, error) {
	img, err := decodeFile(path)
	if err != nil {
		return Hash{}, 0, err
	}
	h, q, err := FromImage(img)
	if err != nil {
		return Hash{}, 0, fmt.Errorf("pdq: %s: %w", path, err)
	}
	return h, q, nil
}

// IsImageName reports whether path has the extension of an image FromFile
// decodes (.jpg, .jpeg, .png, .gif, .webp, in any case): how a directory's
// images are told from its other files.
func IsImageName(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jpg", ".jpeg", ".png", ".gif", ".webp":
		return true
	}
	return false
}

// decodeFile opens and decodes the image at path.
func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pdq: %w", err)
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		if format == "" {
			return nil, fmt.Errorf("pdq: decode %s: %w (supported: JPEG, PNG, GIF, WebP)", path, err)
		}
		return nil, fmt.Errorf("pdq: decode %s (%s): %w", path, format, err)
	}
	return img, nil
}
