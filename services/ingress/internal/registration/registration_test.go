package registration_test

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/railco/relay/services/ingress/internal/registration"
)

// seed is the body of the user story's curl, byte for byte.
func seed(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// minimal is a valid registration with every required field and nothing else.
const minimal = `{"passengerId":"p1","class":"first","train":"RLC-5051",` +
	`"departure":{"time":"2021-07-16 11:45","station":"King Cross"},` +
	`"arrival":{"time":"2021-07-16 16:40","station":"Edinburgh"}}`

// with returns minimal with its closing brace replaced by extra members.
func with(members string) string { return strings.TrimSuffix(minimal, "}") + "," + members + "}" }

// replace returns minimal with old replaced by new, failing loudly if old is absent.
func replace(old, new string) string {
	if !strings.Contains(minimal, old) {
		panic("replace: " + old + " not in minimal")
	}
	return strings.Replace(minimal, old, new, 1)
}

func TestValidate_Valid(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"seed body", string(seed(t))},
		{"minimal", minimal},
		{"surrounding whitespace", " \n\t" + minimal + "\r\n "},
		{"food empty", with(`"food":[]`)},
		{"food null", with(`"food":null`)},
		{"food without comments", with(`"food":[{"serving":"lunch","type":"Asian"}]`)},
		{"comments null", with(`"food":[{"serving":"lunch","type":"Asian","comments":null}]`)},
		{"comments empty strings allowed", with(`"food":[{"serving":"lunch","type":"Asian","comments":["",""]}]`)},
		{"unknown fields everywhere", `{"x":{"y":[1,2,{"z":null}]},"passengerId":"p","class":"c","train":"t",` +
			`"departure":{"time":"2021-07-16 11:45","station":"s","platform":9},` +
			`"arrival":{"time":"2021-07-16 16:40","station":"s","late":false},` +
			`"food":[{"serving":"a","type":"b","extra":[true,-1.5e3]}],"duration":"4h 55m"}`},
		{"escaped key", replace(`"passengerId"`, `"passenger\u0049d"`)},
		{"escaped values", replace(`"King Cross"`, `"King\u0020Cross \"\\/\b\f\n\r\t \ud83d\ude82"`)},
		{"escaped time", replace(`"2021-07-16 11:45"`, `"2021-07-16\u002011:45"`)},
		{"non-ASCII values", replace(`"Edinburgh"`, `"Dùn Èideann 🚂"`)},
		{"leap day", replace(`"2021-07-16 11:45"`, `"2020-02-29 11:45"`)},
		{"across midnight", replace(`"2021-07-16 16:40"`, `"2021-07-17 00:05"`)},
		{"one minute later", replace(`"2021-07-16 16:40"`, `"2021-07-16 11:46"`)},
		{"unknown field numbers", with(`"n":[0,-0,1e5,1E+5,1.25e-3,-12.5,123456789012345678901234567890]`)},
		{"unknown field nested", with(`"deep":` + strings.Repeat("[", registration.MaxDepth-1) + strings.Repeat("]", registration.MaxDepth-1))},
		{"unknown field duplicated", with(`"x":1,"x":2`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := registration.Validate([]byte(tt.body)); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidate_SyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"whitespace only", " \n "},
		{"unclosed object", `{`},
		{"truncated", minimal[:len(minimal)-1]},
		{"trailing comma in object", with(`"x":1,`)},
		{"trailing comma in array", with(`"food":[{"serving":"a","type":"b"},]`)},
		{"leading comma in array", with(`"x":[,1]`)},
		{"leading comma in object", `{,"a":1}`},
		{"missing colon", `{"passengerId" "p"}`},
		{"missing comma", `{"a":1 "b":2}`},
		{"missing value", `{"a":}`},
		{"unquoted key", `{passengerId:"p"}`},
		{"single quotes", `{'passengerId':'p'}`},
		{"second top-level value", minimal + ` {}`},
		{"garbage after", minimal + `x`},
		{"invalid UTF-8", replace(`"Edinburgh"`, "\"Edin\xffburgh\"")},
		{"control character in string", replace(`"Edinburgh"`, "\"Edin\nburgh\"")},
		{"unterminated string", `{"passengerId":"p`},
		{"unterminated escape", `{"passengerId":"p\`},
		{"bad escape", replace(`"Edinburgh"`, `"Edin\xburgh"`)},
		{"short unicode escape", replace(`"Edinburgh"`, `"Edin\u12"`)},
		{"non-hex unicode escape", replace(`"Edinburgh"`, `"\u12G4"`)},
		{"leading zero", with(`"n":01`)},
		{"bare minus", with(`"n":-`)},
		{"dot without digits", with(`"n":1.`)},
		{"exponent without digits", with(`"n":1e`)},
		{"plus sign", with(`"n":+1`)},
		{"hex number", with(`"n":0x10`)},
		{"NaN", with(`"n":NaN`)},
		{"bad literal", with(`"n":tru`)},
		{"capital literal", with(`"n":True`)},
		{"nested too deep", with(`"deep":` + strings.Repeat("[", registration.MaxDepth) + strings.Repeat("]", registration.MaxDepth))},
		{"syntax wins over validation", `{"passengerId":42,"class":}`},
		{"bad syntax inside a wrong-typed field", `{"departure":[1,}`},
		{"bad syntax inside food", `{"food":[{"serving":"a",}]}`},
		{"bad syntax inside comments", `{"food":[{"comments":["a" "b"]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := registration.Validate([]byte(tt.body))
			var syntaxErr *registration.SyntaxError
			if !errors.As(err, &syntaxErr) {
				t.Fatalf("Validate = %v (%T), want a *SyntaxError", err, err)
			}
			if syntaxErr.Offset < 0 || syntaxErr.Offset > len(tt.body) {
				t.Errorf("offset %d outside the body (len %d)", syntaxErr.Offset, len(tt.body))
			}
			if json.Valid([]byte(tt.body)) && utf8.ValidString(tt.body) && !strings.Contains(tt.name, "deep") {
				t.Errorf("encoding/json accepts the body, so it is not a syntax error")
			}
		})
	}
}

func TestValidate_ValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want map[string]string
	}{
		{"top-level array", `[]`, map[string]string{"$": "must be a JSON object"}},
		{"top-level string", `"registration"`, map[string]string{"$": "must be a JSON object"}},
		{"top-level null", `null`, map[string]string{"$": "must be a JSON object"}},
		{"top-level number", ` 42 `, map[string]string{"$": "must be a JSON object"}},
		{"empty object", `{}`, map[string]string{
			"passengerId": "is required", "class": "is required", "train": "is required",
			"departure": "is required", "arrival": "is required",
		}},
		{"passengerId number", replace(`"p1"`, `42`), map[string]string{"passengerId": "must be a string"}},
		{"passengerId null", replace(`"p1"`, `null`), map[string]string{"passengerId": "must be a string"}},
		{"passengerId empty", replace(`"p1"`, `""`), map[string]string{"passengerId": "must not be blank"}},
		{"class blank", replace(`"first"`, `" \t "`), map[string]string{"class": "must not be blank"}},
		{"class escaped blank", replace(`"first"`, `"\u0020\t"`), map[string]string{"class": "must not be blank"}},
		{"train object", replace(`"RLC-5051"`, `{"id":"RLC-5051"}`), map[string]string{"train": "must be a string"}},
		{"train array", replace(`"RLC-5051"`, `["RLC-5051"]`), map[string]string{"train": "must be a string"}},
		{"departure string", replace(`{"time":"2021-07-16 11:45","station":"King Cross"}`, `"x"`), map[string]string{"departure": "must be an object"}},
		{"arrival array", replace(`{"time":"2021-07-16 16:40","station":"Edinburgh"}`, `[]`), map[string]string{"arrival": "must be an object"}},
		{"departure empty", replace(`{"time":"2021-07-16 11:45","station":"King Cross"}`, `{}`), map[string]string{
			"departure.time": "is required", "departure.station": "is required",
		}},
		{"arrival station number", replace(`"Edinburgh"`, `7`), map[string]string{"arrival.station": "must be a string"}},
		{"departure time number", replace(`"2021-07-16 11:45"`, `202107161145`), map[string]string{"departure.time": "must be a string"}},
		{"departure time blank", replace(`"2021-07-16 11:45"`, `""`), map[string]string{"departure.time": "must not be blank"}},
		{"time with T", replace(`"2021-07-16 11:45"`, `"2021-07-16T11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time RFC 3339", replace(`"2021-07-16 16:40"`, `"2021-07-16T16:40:00Z"`), map[string]string{"arrival.time": `must be a time like "2006-01-02 15:04"`}},
		{"time with seconds", replace(`"2021-07-16 11:45"`, `"2021-07-16 11:45:00"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time one-digit month", replace(`"2021-07-16 11:45"`, `"2021-7-16 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time one-digit hour", replace(`"2021-07-16 11:45"`, `"2021-07-16 1:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time month 13", replace(`"2021-07-16 11:45"`, `"2021-13-16 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time day 0", replace(`"2021-07-16 11:45"`, `"2021-07-00 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time 30 February", replace(`"2021-07-16 11:45"`, `"2020-02-30 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time 29 February not leap", replace(`"2021-07-16 11:45"`, `"2021-02-29 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time 29 February 1900", replace(`"2021-07-16 11:45"`, `"1900-02-29 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time 31 April", replace(`"2021-07-16 11:45"`, `"2021-04-31 11:45"`), map[string]string{"departure.time": `must be a time like "2006-01-02 15:04"`}},
		{"time hour 24", replace(`"2021-07-16 16:40"`, `"2021-07-16 24:00"`), map[string]string{"arrival.time": `must be a time like "2006-01-02 15:04"`}},
		{"time minute 60", replace(`"2021-07-16 16:40"`, `"2021-07-16 16:60"`), map[string]string{"arrival.time": `must be a time like "2006-01-02 15:04"`}},
		{"time letters", replace(`"2021-07-16 16:40"`, `"tomorrow morning"`), map[string]string{"arrival.time": `must be a time like "2006-01-02 15:04"`}},
		{"arrival equals departure", replace(`"2021-07-16 16:40"`, `"2021-07-16 11:45"`), map[string]string{"arrival.time": "must be after departure.time"}},
		{"arrival before departure", replace(`"2021-07-16 16:40"`, `"2021-07-15 23:59"`), map[string]string{"arrival.time": "must be after departure.time"}},
		{"food string", with(`"food":"lunch"`), map[string]string{"food": "must be an array"}},
		{"food object", with(`"food":{"serving":"lunch","type":"Asian"}`), map[string]string{"food": "must be an array"}},
		{"food item string", with(`"food":["lunch"]`), map[string]string{"food[0]": "must be an object"}},
		{"food item null", with(`"food":[{"serving":"a","type":"b"},null]`), map[string]string{"food[1]": "must be an object"}},
		{"food item empty", with(`"food":[{}]`), map[string]string{"food[0].serving": "is required", "food[0].type": "is required"}},
		{"food type missing", with(`"food":[{"serving":"a","type":"b"},{"serving":"snacks"}]`), map[string]string{"food[1].type": "is required"}},
		{"food type number", with(`"food":[{"serving":"a","type":3}]`), map[string]string{"food[0].type": "must be a string"}},
		{"food serving blank", with(`"food":[{"serving":"","type":"b"}]`), map[string]string{"food[0].serving": "must not be blank"}},
		{"comments string", with(`"food":[{"serving":"a","type":"b","comments":"spicy"}]`), map[string]string{"food[0].comments": "must be an array"}},
		{"comments number item", with(`"food":[{"serving":"a","type":"b","comments":["ok",2,null]}]`), map[string]string{
			"food[0].comments[1]": "must be a string", "food[0].comments[2]": "must be a string",
		}},
		{"duplicate passengerId", with(`"passengerId":"p2"`), map[string]string{"passengerId": "must appear only once"}},
		{"duplicate departure time", replace(`"station":"King Cross"`, `"station":"King Cross","time":"2021-07-16 11:40"`), map[string]string{"departure.time": "must appear only once"}},
		{"duplicate food type", with(`"food":[{"serving":"a","type":"b","type":"c"}]`), map[string]string{"food[0].type": "must appear only once"}},
		{"duplicate food", with(`"food":[],"food":[]`), map[string]string{"food": "must appear only once"}},
		{"escaped duplicate key", with(`"p\u0061ssengerId":"p2"`), map[string]string{"passengerId": "must appear only once"}},
		{"every problem at once", `{"passengerId":42,"class":"","departure":"x","arrival":{"time":"soon"},` +
			`"food":[{"serving":"a"},7,{"type":"b","comments":[1]}]}`, map[string]string{
			"passengerId":         "must be a string",
			"class":               "must not be blank",
			"train":               "is required",
			"departure":           "must be an object",
			"arrival.time":        `must be a time like "2006-01-02 15:04"`,
			"arrival.station":     "is required",
			"food[0].type":        "is required",
			"food[1]":             "must be an object",
			"food[2].serving":     "is required",
			"food[2].comments[0]": "must be a string",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := registration.Validate([]byte(tt.body))
			var verr *registration.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v (%T), want a *ValidationError", err, err)
			}
			if !maps.Equal(verr.Fields, tt.want) {
				t.Errorf("fields:\n got %q\nwant %q", verr.Fields, tt.want)
			}
		})
	}
}

func TestValidationError_ErrorListsFieldsInOrder(t *testing.T) {
	err := &registration.ValidationError{Fields: map[string]string{"train": "is required", "class": "must not be blank"}}
	want := "invalid registration: class must not be blank; train is required"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidate_SeedAllocatesNothing(t *testing.T) {
	body := seed(t)
	if n := testing.AllocsPerRun(100, func() { _ = registration.Validate(body) }); n != 0 {
		t.Errorf("Validate(seed) allocates %v times per run, want 0", n)
	}
}

// FuzzValidate checks the syntax verdict against encoding/json and that a
// body Validate accepts decodes into the registration's shape.
func FuzzValidate(f *testing.F) {
	f.Add(seed(f))
	for _, s := range []string{minimal, `{}`, `[]`, `{"a":[1,2,{"b":null}]}`, `"\u00e9"`, `-0.5e+3`, `{"a":1,}`, `[01]`, "\"\xff\"", `{"food":[{"comments":[1]}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := registration.Validate(body)
		var syntaxErr *registration.SyntaxError
		isSyntax := errors.As(err, &syntaxErr)
		wellFormed := json.Valid(body) && utf8.Valid(body)
		if isSyntax && wellFormed && !strings.Contains(syntaxErr.Msg, "nested") {
			t.Fatalf("SyntaxError %v for a body encoding/json accepts", err)
		}
		if !isSyntax && !wellFormed {
			t.Fatalf("Validate = %v for a body encoding/json rejects", err)
		}
		if err != nil {
			return
		}
		type endpoint struct{ Time, Station string }
		var r struct {
			PassengerID        string `json:"passengerId"`
			Class, Train       string
			Departure, Arrival endpoint
			Food               []struct {
				Serving, Type string
				Comments      []string
			}
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("valid body does not decode into a registration: %v", err)
		}
		if r.PassengerID == "" || r.Departure.Time == "" || r.Arrival.Time <= r.Departure.Time {
			t.Fatalf("valid body decodes to an invalid registration: %+v", r)
		}
	})
}
