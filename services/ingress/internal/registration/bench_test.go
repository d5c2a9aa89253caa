package registration_test

import (
	"testing"

	"github.com/railco/relay/services/ingress/internal/registration"
)

// BenchmarkValidate measures the hot path on the user story's body.
func BenchmarkValidate(b *testing.B) {
	body := seed(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := registration.Validate(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate_Invalid measures a body with several problems, which
// allocates the report.
func BenchmarkValidate_Invalid(b *testing.B) {
	body := []byte(`{"passengerId":42,"class":"","departure":"x","arrival":{"time":"soon"},"food":[{"serving":"a"},7]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := registration.Validate(body); err == nil {
			b.Fatal("valid")
		}
	}
}
