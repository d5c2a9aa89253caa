package registration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
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
		{"escaped values", replace(`"King Cross"`, `"King\u0020Cross \"\\/ \ud83d\ude82 \uD83D\uDE82"`)},
		{"control characters in unknown fields", with(`"note":"\b\f\n\r\t\u0000\u001f\u007f\u0085` + "\x7f\u0085" + `","\u0000":{"\n":"\u009f"}`)},
		{"surrogate pairs in keys and values", with(`"\ud83d\ude82":"\ud83d\ude82","x":{"\udbff\udfff":["\ud800\udc00"]}`)},
		{"non-control non-ASCII in known fields", replace(`"King Cross"`, `"King\u00a0Cross\u00a0`+"\u00a0\u2028\ufffd"+`"`)},
		{"keys near known fields", with(`"passengerIds":1,"passenger_id":2,"klass":3,"ſ":4,"foods":[],"Kelvin":5,` +
			`"food":[{"serving":"a","type":"b","servings":1,"ſervingſ":2,"typ":3,"comment":4}]`)},
		{"keys near endpoint fields", replace(`"station":"King Cross"`, `"station":"King Cross","times":1,"tim":2,"ſtationſ":3,"TIMESTAMP":4`)},
		{"numbers at float64's edges", with(`"n":[1.7976931348623157e308,-1.7976931348623157e308,1.797693134862315807937289714053e308,` +
			`179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017e219,` +
			`0.00017976931348623157e312,4.9e-324,1e-400,-1e-999999999,0e999999999,0.0e-999999999]`)},
		{"number of MaxNumberLength characters", with(`"n":` + "1" + strings.Repeat("0", registration.MaxNumberLength-1))},
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

// The descriptions of the hardening rules, as a client reads them.
const (
	msgControl      = "must not contain control characters (U+0000–U+001F, U+007F–U+009F)"
	msgSurrogate    = `must not contain a lone UTF-16 surrogate escape (like "\ud800" without its low half)`
	msgNumberRange  = "must not contain a number beyond float64's range (±1.7976931348623157e308)"
	msgNumberLength = "must not contain a number longer than 100 characters"
)

func caseVariant(field string) string {
	return "matches " + field + " under case folding; use the exact name"
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
		// A case variant of a known field: a case-insensitive decoder takes it.
		{"PASSENGERID beside passengerId", with(`"PASSENGERID":"p2"`), map[string]string{"PASSENGERID": caseVariant("passengerId")}},
		{"passengerID instead of passengerId", replace(`"passengerId"`, `"passengerID"`), map[string]string{
			"passengerID": caseVariant("passengerId"), "passengerId": "is required",
		}},
		{"case variant before the field", replace(`"passengerId"`, `"Class":"x","passengerId"`), map[string]string{"Class": caseVariant("class")}},
		{"escaped case variant", with(`"p\u0041ssengerId":"p2"`), map[string]string{"pAssengerId": caseVariant("passengerId")}},
		{"case variant of an object field", with(`"ARRIVAL":{"time":"2021-07-16 16:40","station":"Edinburgh"},"Food":[]`), map[string]string{
			"ARRIVAL": caseVariant("arrival"), "Food": caseVariant("food"),
		}},
		{"departure.TIME", replace(`"station":"King Cross"`, `"station":"King Cross","TIME":"2021-07-16 11:40"`), map[string]string{"departure.TIME": caseVariant("departure.time")}},
		{"arrival.Station instead of station", replace(`"station":"Edinburgh"`, `"Station":"Edinburgh"`), map[string]string{
			"arrival.Station": caseVariant("arrival.station"), "arrival.station": "is required",
		}},
		{"food[0].Serving", with(`"food":[{"serving":"a","type":"b","Serving":"c"}]`), map[string]string{"food[0].Serving": caseVariant("food[0].serving")}},
		{"long s folds to s", with(`"food":[{"serving":"a","type":"b"},{"ſerving":"c","type":"d","COMMENTſ":[]}]`), map[string]string{
			"food[1].ſerving":  caseVariant("food[1].serving"),
			"food[1].COMMENTſ": caseVariant("food[1].comments"),
			"food[1].serving":  "is required",
		}},
		{"escaped long s", with(`"cla\u017fs":"x"`), map[string]string{"claſs": caseVariant("class")}},
		// Control characters in known string fields.
		{"passengerId NUL", replace(`"p1"`, `"p\u00001"`), map[string]string{"passengerId": msgControl}},
		{"class newline", replace(`"first"`, `"first\n"`), map[string]string{"class": msgControl}},
		{"train raw DEL", replace(`"RLC-5051"`, "\"RLC\x7f5051\""), map[string]string{"train": msgControl}},
		{"departure.station escaped C1", replace(`"King Cross"`, `"King\u0085Cross"`), map[string]string{"departure.station": msgControl}},
		{"arrival.station raw C1", replace(`"Edinburgh"`, "\"Edin\u009fburgh\""), map[string]string{"arrival.station": msgControl}},
		{"departure.time tab", replace(`"2021-07-16 11:45"`, `"2021-07-16\t11:45"`), map[string]string{"departure.time": msgControl}},
		{"food strings", with(`"food":[{"serving":"lunch\u001f","type":"\u007f","comments":["ok","a\u0000",null]}]`), map[string]string{
			"food[0].serving":     msgControl,
			"food[0].type":        msgControl,
			"food[0].comments[1]": msgControl,
			"food[0].comments[2]": "must be a string",
		}},
		// Lone surrogates, anywhere.
		{"passengerId lone high surrogate", replace(`"p1"`, `"p\ud800"`), map[string]string{"passengerId": msgSurrogate}},
		{"class lone low surrogate", replace(`"first"`, `"\uDC00first"`), map[string]string{"class": msgSurrogate}},
		{"train reversed pair", replace(`"RLC-5051"`, `"\ude82\ud83d"`), map[string]string{"train": msgSurrogate}},
		{"high surrogate then high surrogate", replace(`"King Cross"`, `"\ud83d\ud83d\ude82"`), map[string]string{"departure.station": msgSurrogate}},
		{"high surrogate then another escape", replace(`"Edinburgh"`, `"\ud83d\n"`), map[string]string{"arrival.station": msgSurrogate}},
		{"high surrogate at the end", replace(`"2021-07-16 16:40"`, `"2021-07-16 16:40\ud83d"`), map[string]string{"arrival.time": msgSurrogate}},
		{"lone surrogate in a comment", with(`"food":[{"serving":"a","type":"b","comments":["ok","\udfff"]}]`), map[string]string{"food[0].comments[1]": msgSurrogate}},
		{"lone surrogate in an unknown field", with(`"note":"\ud800"`), map[string]string{"note": msgSurrogate}},
		{"lone surrogate deep in an unknown field", with(`"x":{"y":[1,{"z":"\udbff"}]}`), map[string]string{"x": msgSurrogate}},
		{"lone surrogate in a nested key of an unknown field", with(`"x":{"\ud800":1}`), map[string]string{"x": msgSurrogate}},
		{"lone surrogate in a top-level key", with(`"a\ud800":1`), map[string]string{`a\ud800`: msgSurrogate}},
		{"lone surrogates in keys that collapse to one", with(`"\ud800":1,"\udc00":2`), map[string]string{
			`\ud800`: msgSurrogate,
			`\udc00`: msgSurrogate,
		}},
		{"lone surrogate in a departure key", replace(`"station":"King Cross"`, `"station":"King Cross","\udc00x":1`), map[string]string{`departure.\udc00x`: msgSurrogate}},
		{"lone surrogate in a food key", with(`"food":[{"serving":"a","type":"b","\ud800":"c"}]`), map[string]string{`food[0].\ud800`: msgSurrogate}},
		{"lone surrogate in a wrong-typed field", replace(`"p1"`, `["\ud800"]`), map[string]string{"passengerId": "must be a string"}},
		{"lone surrogate at the top level", `"\ud800"`, map[string]string{"$": "must be a JSON object"}},
		// Numbers a float64 cannot hold, anywhere.
		{"huge exponent", with(`"n":1e999999999`), map[string]string{"n": msgNumberRange}},
		{"negative overflow", with(`"n":-1e309`), map[string]string{"n": msgNumberRange}},
		{"just past MaxFloat64", with(`"n":1.7976931348623159e308`), map[string]string{"n": msgNumberRange}},
		{"overflow spelled with a fraction", with(`"n":0.00018e313`), map[string]string{"n": msgNumberRange}},
		{"50,000 digits", with(`"n":` + strings.Repeat("9", 50000)), map[string]string{"n": msgNumberLength}},
		{"one character too many", with(`"n":` + "1" + strings.Repeat("0", registration.MaxNumberLength)), map[string]string{"n": msgNumberLength}},
		{"long zero", with(`"n":0.` + strings.Repeat("0", registration.MaxNumberLength)), map[string]string{"n": msgNumberLength}},
		{"number deep in an unknown field", with(`"x":{"y":[1,2,1e400]}`), map[string]string{"x": msgNumberRange}},
		{"number in a departure field", replace(`"station":"King Cross"`, `"station":"King Cross","platform":1e400`), map[string]string{"departure.platform": msgNumberRange}},
		{"number in a food field", with(`"food":[{"serving":"a","type":"b","extra":[-1e400]}]`), map[string]string{"food[0].extra": msgNumberRange}},
		{"number in a wrong-typed field", replace(`"p1"`, `1e400`), map[string]string{"passengerId": "must be a string"}},
		{"number at the top level", `1e400`, map[string]string{"$": "must be a JSON object"}},
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

// TestValidate_HardeningAllocatesNothing: the case-folding, control-character,
// surrogate and number checks cost no allocation on valid bodies that exercise
// them (only an escaped string is decoded into a copy).
func TestValidate_HardeningAllocatesNothing(t *testing.T) {
	bodies := []string{
		with(`"PassengerIds":1,"passenger_id":2,"klass":3,"ſ":4,"Foods":[],"KelvinKelvinKelvinKelvinKelvin":5,` + "\"\u212a\u212a\u212a\u212a\":7," + `"ſſſſſſſſſſſſſſſſſſſſſſ":6,` +
			`"food":[{"serving":"a","type":"b","SERVINGS":1,"ſervingſ":2,"typ":3,"comment":4,"comments":["Dùn Èideann 🚂"]}]`),
		replace(`"station":"King Cross"`, `"station":"King Cross","times":1,"ſtationſ":2,"TIMESTAMP":3`),
		with(`"n":[1.7976931348623157e308,-1.7976931348623156e308,1797693134862315807937289714053034150799341327100378269361737789804449682927647509466e224,` +
			`1e-400,0e999999999,` + "1" + strings.Repeat("0", registration.MaxNumberLength-1) + `]`),
		with(`"note":"` + "\x7f\u0085" + `"`),
	}
	for _, body := range bodies {
		b := []byte(body)
		if err := registration.Validate(b); err != nil {
			t.Fatalf("Validate(%s): %v", body, err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = registration.Validate(b) }); n != 0 {
			t.Errorf("Validate(%s) allocates %v times per run, want 0", body, n)
		}
	}
}

// endpoint, serving and decoded are a registration as a backend decodes it
// with encoding/json, which matches keys to fields case-insensitively.
type (
	endpoint struct{ Time, Station string }
	serving  struct {
		Serving, Type string
		Comments      []string
	}
	decoded struct {
		PassengerID        string `json:"passengerId"`
		Class, Train       string
		Departure, Arrival endpoint
		Food               []serving
	}
)

// exactly reads body's known fields by their exact names, as a case-sensitive
// decoder would, into the shape encoding/json decodes.
func exactly(body []byte) (decoded, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return decoded{}, err
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	end := func(k string) endpoint {
		e, _ := m[k].(map[string]any)
		return endpoint{Time: str(e, "time"), Station: str(e, "station")}
	}
	d := decoded{PassengerID: str(m, "passengerId"), Class: str(m, "class"), Train: str(m, "train"), Departure: end("departure"), Arrival: end("arrival")}
	if food, ok := m["food"].([]any); ok {
		d.Food = []serving{}
		for _, f := range food {
			fm, _ := f.(map[string]any)
			s := serving{Serving: str(fm, "serving"), Type: str(fm, "type")}
			if comments, ok := fm["comments"].([]any); ok {
				s.Comments = []string{}
				for _, c := range comments {
					text, _ := c.(string)
					s.Comments = append(s.Comments, text)
				}
			}
			d.Food = append(d.Food, s)
		}
	}
	return d, nil
}

// replacements counts U+FFFD in the strings (keys included) that
// encoding/json decodes from body, and as written in body, raw or escaped: a
// lone surrogate makes the first count larger. (An escaped backslash before
// "ufffd" makes the second one larger, never the first.)
func replacements(t testing.TB, body []byte) (decodedCount, writtenCount int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("tokens of a valid body: %v", err)
		}
		if s, ok := tok.(string); ok {
			decodedCount += strings.Count(s, "\uFFFD")
		}
	}
	writtenCount = bytes.Count(body, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(body), []byte(`\ufffd`))
	return decodedCount, writtenCount
}

// TestValidate_RejectsWhatTheBackendWouldReadDifferently shows each hazard
// the hardening rules close, on encoding/json, and that Validate rejects it.
func TestValidate_RejectsWhatTheBackendWouldReadDifferently(t *testing.T) {
	t.Run("case variants", func(t *testing.T) {
		for _, body := range []string{
			with(`"PASSENGERID":"p2"`),
			replace(`"passengerId"`, `"passengerID"`),
			replace(`"station":"King Cross"`, `"station":"King Cross","TIME":"2021-07-16 11:40"`),
			replace(`"time":"2021-07-16 16:40"`, `"time":"2021-07-16 16:40","Time":"2021-07-16 16:30"`),
			with(`"food":[{"serving":"a","type":"b","Serving":"c"}]`),
			with(`"food":[{"serving":"a","type":"b","ſerving":"c"}]`),
			with(`"food":[{"serving":"a","type":"b","comments":["x"],"COMMENTſ":null}]`),
			with(`"Food":[{"serving":"a","type":"b"}]`),
		} {
			var got decoded
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			exact, err := exactly([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if reflect.DeepEqual(got, exact) {
				t.Errorf("encoding/json reads %s as its exact keys say; not a hazard", body)
			}
			assertValidationError(t, body)
		}
	})
	t.Run("lone surrogates", func(t *testing.T) {
		for _, body := range []string{
			replace(`"p1"`, `"p\ud800"`),
			replace(`"RLC-5051"`, `"\ude82\ud83d"`),
			with(`"x":{"\ud800":1,"\udc00":2}`),
		} {
			if d, w := replacements(t, []byte(body)); d <= w {
				t.Errorf("encoding/json decodes %s without a U+FFFD the body does not hold", body)
			}
			assertValidationError(t, body)
		}
	})
	t.Run("numbers", func(t *testing.T) {
		for _, body := range []string{with(`"n":1e999999999`), with(`"x":{"y":[-1e309]}`)} {
			var v any
			if err := json.Unmarshal([]byte(body), &v); err == nil {
				t.Errorf("encoding/json decodes %s", body)
			}
			assertValidationError(t, body)
		}
	})
}

func assertValidationError(t *testing.T, body string) {
	t.Helper()
	var verr *registration.ValidationError
	if err := registration.Validate([]byte(body)); !errors.As(err, &verr) {
		t.Errorf("Validate(%s) = %v (%T), want a *ValidationError", body, err, err)
	}
}

// jsonNumber is RFC 8259's number grammar.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// checkNumber checks that Validate takes the number lit in an unknown field
// exactly when it is at most MaxNumberLength characters and strconv.ParseFloat
// (what encoding/json decodes numbers with) holds it.
func checkNumber(t *testing.T, lit string) {
	t.Helper()
	_, perr := strconv.ParseFloat(lit, 64)
	want := map[string]string(nil)
	switch {
	case len(lit) > registration.MaxNumberLength:
		want = map[string]string{"n": msgNumberLength}
	case perr != nil:
		want = map[string]string{"n": msgNumberRange}
	}
	err := registration.Validate([]byte(with(`"n":` + lit)))
	var verr *registration.ValidationError
	switch {
	case want == nil && err != nil:
		t.Errorf("Validate rejects %s (ParseFloat: %v): %v", lit, perr, err)
	case want != nil && !errors.As(err, &verr):
		t.Errorf("Validate(%s) = %v, want %q (ParseFloat: %v)", lit, err, want, perr)
	case want != nil && !maps.Equal(verr.Fields, want):
		t.Errorf("Validate(%s) fields %q, want %q", lit, verr.Fields, want)
	}
}

// numberSeeds are literals on both sides of float64's largest value, written
// in many ways, and of the length bound.
func numberSeeds() []string {
	const digits = "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096" // 2^1024 − 2^970
	lits := []string{"0", "-0", "1e308", "1e309", "9e307", "9.9999e307", "1e-400", "4.9e-324", "2e-324", "0e999999999", "1E+308", "1e+0309",
		"1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308", "17976931348623157e292", "0.17976931348623159e309",
		"1" + strings.Repeat("0", registration.MaxNumberLength-1), "1" + strings.Repeat("0", registration.MaxNumberLength)}
	for k := 1; k <= 60; k++ {
		d := digits[:k]
		for _, m := range []string{d, bumped(d, +1), bumped(d, -1)} {
			if m == "" || m[0] == '0' {
				continue
			}
			frac := m[:1]
			if len(m) > 1 {
				frac += "." + m[1:]
			}
			lits = append(lits,
				frac+"e308",
				"-"+frac+"e+308",
				m+"e"+strconv.Itoa(309-len(m)),
				"0.000"+m+"E"+strconv.Itoa(312),
				frac+"000e308",
			)
		}
	}
	return lits
}

// bumped adds delta to the last digit of d, or returns "" when that leaves 0–9.
func bumped(d string, delta int) string {
	last := int(d[len(d)-1]-'0') + delta
	if last < 0 || last > 9 {
		return ""
	}
	return d[:len(d)-1] + string(rune('0'+last))
}

func TestValidate_NumbersAgreeWithParseFloat(t *testing.T) {
	for _, lit := range numberSeeds() {
		if !jsonNumber.MatchString(lit) {
			t.Fatalf("seed %q is not a JSON number", lit)
		}
		checkNumber(t, lit)
	}
}

// FuzzNumber checks the number bounds against strconv.ParseFloat.
func FuzzNumber(f *testing.F) {
	for _, lit := range numberSeeds() {
		f.Add(lit)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		if !jsonNumber.MatchString(lit) {
			return // not a number: FuzzValidate covers syntax
		}
		checkNumber(t, lit)
	})
}

// fuzzSeeds are bodies for FuzzValidate: the shapes of every rule.
var fuzzSeeds = []string{
	minimal, `{}`, `[]`, `{"a":[1,2,{"b":null}]}`, `"\u00e9"`, `-0.5e+3`, `{"a":1,}`, `[01]`, "\"\xff\"", `{"food":[{"comments":[1]}]}`,
	// case variants
	with(`"PASSENGERID":"p2"`), replace(`"passengerId"`, `"passengerID"`), with(`"p\u0041ssengerId":"p2"`),
	replace(`"station":"King Cross"`, `"station":"King Cross","TIME":"2021-07-16 11:40"`),
	with(`"food":[{"serving":"a","type":"b","Serving":"c"}]`), with(`"food":[{"serving":"a","type":"b","ſerving":"c"}]`),
	with(`"cla\u017fs":"x","\u212a":1`), with(`"Food":[],"ARRIVAL":{}`),
	// control characters
	replace(`"p1"`, `"p\u00001"`), replace(`"first"`, `"first\n"`), replace(`"RLC-5051"`, "\"RLC\x7f5051\""),
	replace(`"King Cross"`, `"King\u0085Cross"`), with(`"food":[{"serving":"lunch\u001f","type":"\u007f","comments":["a\u0000"]}]`),
	with(`"note":"\u0000\n` + "\x7f\u0085" + `"`),
	// surrogates
	replace(`"p1"`, `"p\ud800"`), replace(`"RLC-5051"`, `"\ude82\ud83d"`), replace(`"King Cross"`, `"\ud83d\ude82\ud83d"`),
	with(`"x":{"y":["\udbff"]}`), with(`"\ud800":1,"\udc00":2`), with(`"\ud83d\ude82":"\uD83D\uDE82"`), `"\ud800"`,
	// numbers
	with(`"n":1e999999999`), with(`"n":-1e309`), with(`"n":1.7976931348623157e308`), with(`"n":1.7976931348623159e308`),
	with(`"n":` + strings.Repeat("9", 50000)), with(`"n":` + "1" + strings.Repeat("0", registration.MaxNumberLength-1)),
	with(`"x":{"y":[1e-400,0e99999]}`), `1e400`,
}

// FuzzValidate checks the syntax verdict against encoding/json, and that a
// body Validate accepts decodes into the registration's shape and means to
// encoding/json what it meant to Validate: the same known fields as their
// exact names say, no control characters in them, no lone surrogate turned
// into U+FFFD, every number a float64.
func FuzzValidate(f *testing.F) {
	f.Add(seed(f))
	for _, s := range fuzzSeeds {
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
		var r decoded
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("valid body does not decode into a registration: %v", err)
		}
		if r.PassengerID == "" || r.Departure.Time == "" || r.Arrival.Time <= r.Departure.Time {
			t.Fatalf("valid body decodes to an invalid registration: %+v", r)
		}
		exact, err := exactly(body)
		if err != nil {
			t.Fatalf("valid body does not decode into a map: %v", err)
		}
		if !reflect.DeepEqual(r, exact) {
			t.Fatalf("encoding/json reads %+v, the exact field names say %+v", r, exact)
		}
		known := []string{r.PassengerID, r.Class, r.Train, r.Departure.Time, r.Departure.Station, r.Arrival.Time, r.Arrival.Station}
		for _, f := range r.Food {
			known = append(append(known, f.Serving, f.Type), f.Comments...)
		}
		for _, s := range known {
			if strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("valid body has a control character in the known string %q", s)
			}
		}
		if d, w := replacements(t, body); d > w {
			t.Fatalf("encoding/json decodes %d U+FFFD from a body that holds %d: a lone surrogate", d, w)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("valid body does not decode: %v", err)
		}
	})
}
