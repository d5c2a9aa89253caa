package index

// SetTrimBatch makes Trim examine n records per transaction until the
// returned function restores the default.
func SetTrimBatch(n int) (restore func()) {
	old := trimBatch
	trimBatch = n
	return func() { trimBatch = old }
}
