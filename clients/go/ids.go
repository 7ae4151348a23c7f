package seen

// MaxIDLength is the longest id or name the store accepts in a key.
const MaxIDLength = 128

// CheckDownloadID checks a download or user id: 1-128 characters of [A-Za-z0-9._@=+-], the
// first a letter or digit (no ':', '/', braces, glob characters, spaces, control or
// non-ASCII characters), as cache/keys.py validate_id.
func CheckDownloadID(field, id string) error {
	return checkID(field, id, "._@=+-")
}

// CheckJobID checks a queue job id (or queue name): as CheckDownloadID, with ':' and '/'
// allowed too (drain ids are "progress-drain:<shard>:<hex>"), as cache/keys.py validate_name.
func CheckJobID(field, id string) error {
	return checkID(field, id, "._@=+/:-")
}

func checkID(field, id, punctuation string) error {
	if id == "" {
		return invalid(field, "must not be empty")
	}
	if len(id) > MaxIDLength {
		return invalid(field, "is longer than %d characters", MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && indexByte(punctuation, c) {
			continue
		}
		return invalid(field, "%q: only letters, digits and %q, starting with a letter or digit",
			id, punctuation)
	}
	return nil
}

func indexByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}
