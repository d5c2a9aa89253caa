// Package registration checks that a request body is a catering registration
// the backend can use, without building it: the ingress forwards the exact
// bytes it received, so it only needs a verdict.
//
// Validate walks the JSON once, checking its syntax and the registration's
// rules together, and allocates nothing for a valid body. The rules:
//
//   - the top level is a JSON object; anything else (an array, a string, ...)
//     is a *ValidationError on the field "$";
//   - passengerId, class, train, departure.time, departure.station,
//     arrival.time and arrival.station are required, non-blank strings;
//   - times are "YYYY-MM-DD HH:MM" (Go layout "2006-01-02 15:04", the hour
//     always two digits) and arrival.time is strictly after departure.time;
//   - food, if present and not null, is an array of objects, each with
//     non-blank strings serving and type and, optionally, comments: an array
//     of strings (or null);
//   - a known field of the wrong JSON type is a *ValidationError naming it;
//   - a known field given twice in one object is a *ValidationError (decoders
//     disagree on which copy wins, so the backend might see the other one);
//   - unknown fields are allowed and not looked at.
//
// Malformed JSON, including invalid UTF-8 and nesting deeper than MaxDepth, is
// a *SyntaxError.
package registration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TimeLayout is the layout of departure.time and arrival.time.
const TimeLayout = "2006-01-02 15:04"

// MaxDepth bounds how deeply arrays and objects may nest, so that a hostile
// body cannot make the recursive walk use unbounded stack.
const MaxDepth = 1000

// SyntaxError means the body is not well-formed JSON.
type SyntaxError struct {
	Offset int    // byte offset of the problem in the body
	Msg    string // what is wrong there
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Msg)
}

// ValidationError means the body is well-formed JSON but not a valid
// registration. Fields maps each offending field's dotted path (e.g.
// "departure.time", "food[1].type", "$" for the whole body) to what is wrong
// with it; it lists every problem found, not just the first.
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid registration: ")
	for i, k := range slices.Sorted(maps.Keys(e.Fields)) {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(e.Fields[k])
	}
	return b.String()
}

// Problem descriptions, one per rule.
const (
	msgRequired  = "is required"
	msgBlank     = "must not be blank"
	msgString    = "must be a string"
	msgObject    = "must be an object"
	msgArray     = "must be an array"
	msgTime      = `must be a time like "2006-01-02 15:04"`
	msgAfter     = "must be after departure.time"
	msgDuplicate = "must appear only once"
)

// rootPath names the body itself in ValidationError.Fields.
const rootPath = "$"

// Validate checks body. It returns nil, a *SyntaxError or a *ValidationError.
func Validate(body []byte) error {
	if !utf8.Valid(body) {
		return &SyntaxError{Offset: invalidUTF8Offset(body), Msg: "invalid UTF-8"}
	}
	p := parser{data: body}
	if err := p.document(); err != nil {
		return err
	}
	if p.problems != nil {
		return &ValidationError{Fields: p.problems}
	}
	return nil
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// parser walks one body. Syntax errors end the walk; rule violations are
// collected in problems, which stays nil (no allocation) for a valid body.
type parser struct {
	data     []byte
	pos      int
	depth    int
	problems map[string]string
}

// problem records msg for path unless path already has one: the first
// problem found for a field is the most fundamental.
func (p *parser) problem(path, msg string) {
	if p.problems == nil {
		p.problems = make(map[string]string)
	}
	if _, ok := p.problems[path]; !ok {
		p.problems[path] = msg
	}
}

// Field bits, to spot missing and repeated fields of one object.
const (
	fPassengerID = 1 << iota
	fClass
	fTrain
	fDeparture
	fArrival
	fFood
)

// document checks the whole body.
func (p *parser) document() error {
	p.ws()
	if p.pos == len(p.data) {
		return p.syntax("empty body")
	}
	if p.data[p.pos] != '{' {
		if err := p.value(); err != nil {
			return err
		}
		p.problem(rootPath, "must be a JSON object")
	} else if err := p.registration(); err != nil {
		return err
	}
	p.ws()
	if p.pos != len(p.data) {
		return p.syntax(fmt.Sprintf("unexpected %s after the top-level value", quoteByte(p.data[p.pos])))
	}
	return nil
}

// registration checks the top-level object.
func (p *parser) registration() error {
	var seen int
	var dep, arr []byte // the times, when well-formed
	first := true
	if err := p.enter('{'); err != nil {
		return err
	}
	for {
		key, ok, err := p.member(&first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		var bit int
		var path string
		switch string(key) { // no allocation: the compiler compares in place
		case "passengerId":
			bit, path = fPassengerID, "passengerId"
		case "class":
			bit, path = fClass, "class"
		case "train":
			bit, path = fTrain, "train"
		case "departure":
			bit, path = fDeparture, "departure"
		case "arrival":
			bit, path = fArrival, "arrival"
		case "food":
			bit, path = fFood, "food"
		default:
			if err := p.value(); err != nil {
				return err
			}
			continue
		}
		if seen&bit != 0 {
			p.problem(path, msgDuplicate)
		}
		seen |= bit
		switch bit {
		case fDeparture:
			dep, err = p.endpoint(path, "departure.time", "departure.station")
		case fArrival:
			arr, err = p.endpoint(path, "arrival.time", "arrival.station")
		case fFood:
			err = p.food()
		default:
			_, err = p.requiredString(path)
		}
		if err != nil {
			return err
		}
	}
	for _, f := range [...]struct {
		bit  int
		path string
	}{{fPassengerID, "passengerId"}, {fClass, "class"}, {fTrain, "train"}, {fDeparture, "departure"}, {fArrival, "arrival"}} {
		if seen&f.bit == 0 {
			p.problem(f.path, msgRequired)
		}
	}
	// Fixed-width, zero-padded times order like the instants they name.
	if dep != nil && arr != nil && bytes.Compare(arr, dep) <= 0 {
		p.problem("arrival.time", msgAfter)
	}
	return nil
}

// endpoint checks departure or arrival and returns its time when
// well-formed. The paths come spelled out so that a valid body builds none.
func (p *parser) endpoint(path, timePath, stationPath string) (when []byte, err error) {
	if p.peek() != '{' {
		return nil, p.wrongType(path, msgObject)
	}
	const fTime, fStation = 1, 2
	var seen int
	first := true
	if err := p.enter('{'); err != nil {
		return nil, err
	}
	for {
		key, ok, err := p.member(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "time":
			if seen&fTime != 0 {
				p.problem(timePath, msgDuplicate)
			}
			seen |= fTime
			s, err := p.requiredString(timePath)
			if err != nil {
				return nil, err
			}
			if s != nil {
				if validTime(s) {
					when = s
				} else {
					p.problem(timePath, msgTime)
				}
			}
		case "station":
			if seen&fStation != 0 {
				p.problem(stationPath, msgDuplicate)
			}
			seen |= fStation
			if _, err := p.requiredString(stationPath); err != nil {
				return nil, err
			}
		default:
			if err := p.value(); err != nil {
				return nil, err
			}
		}
	}
	if seen&fTime == 0 {
		p.problem(timePath, msgRequired)
	}
	if seen&fStation == 0 {
		p.problem(stationPath, msgRequired)
	}
	return when, nil
}

// food checks the optional food array.
func (p *parser) food() error {
	switch p.peek() {
	case 'n':
		return p.value() // null: no food ordered
	case '[':
	default:
		return p.wrongType("food", msgArray)
	}
	first := true
	if err := p.enter('['); err != nil {
		return err
	}
	for i := 0; ; i++ {
		ok, err := p.element(&first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := p.serving(i); err != nil {
			return err
		}
	}
}

// serving checks food[i].
func (p *parser) serving(i int) error {
	if p.peek() != '{' {
		return p.wrongType(indexPath("food", i, ""), msgObject)
	}
	const fServing, fType, fComments = 1, 2, 4
	var seen int
	first := true
	if err := p.enter('{'); err != nil {
		return err
	}
	for {
		key, ok, err := p.member(&first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		var bit int
		var name string
		switch string(key) {
		case "serving":
			bit, name = fServing, "serving"
		case "type":
			bit, name = fType, "type"
		case "comments":
			bit, name = fComments, "comments"
		default:
			if err := p.value(); err != nil {
				return err
			}
			continue
		}
		if seen&bit != 0 {
			p.problem(indexPath("food", i, name), msgDuplicate)
		}
		seen |= bit
		if bit == fComments {
			err = p.comments(i)
		} else {
			err = p.requiredStringAt(i, name)
		}
		if err != nil {
			return err
		}
	}
	if seen&fServing == 0 {
		p.problem(indexPath("food", i, "serving"), msgRequired)
	}
	if seen&fType == 0 {
		p.problem(indexPath("food", i, "type"), msgRequired)
	}
	return nil
}

// requiredStringAt is requiredString for food[i].name, building the path only
// when there is a problem to report.
func (p *parser) requiredStringAt(i int, name string) error {
	switch p.peek() {
	case '"':
		s, err := p.str()
		if err != nil {
			return err
		}
		if blank(s) {
			p.problem(indexPath("food", i, name), msgBlank)
		}
		return nil
	default:
		return p.wrongType(indexPath("food", i, name), msgString)
	}
}

// comments checks food[i].comments: null or an array of strings.
func (p *parser) comments(i int) error {
	switch p.peek() {
	case 'n':
		return p.value()
	case '[':
	default:
		return p.wrongType(indexPath("food", i, "comments"), msgArray)
	}
	first := true
	if err := p.enter('['); err != nil {
		return err
	}
	for j := 0; ; j++ {
		ok, err := p.element(&first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if p.peek() == '"' {
			if _, err := p.str(); err != nil {
				return err
			}
			continue
		}
		if err := p.wrongType(indexPath(indexPath("food", i, "comments"), j, ""), msgString); err != nil {
			return err
		}
	}
}

func indexPath(base string, i int, field string) string {
	s := base + "[" + strconv.Itoa(i) + "]"
	if field != "" {
		s += "." + field
	}
	return s
}

// requiredString checks that the next value is a non-blank string and returns
// it decoded, or nil after recording a problem.
func (p *parser) requiredString(path string) ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.wrongType(path, msgString)
	}
	s, err := p.str()
	if err != nil {
		return nil, err
	}
	if blank(s) {
		p.problem(path, msgBlank)
		return nil, nil
	}
	return s, nil
}

// wrongType skips the next value, which is not of the type path needs, and
// records msg for path.
func (p *parser) wrongType(path, msg string) error {
	if err := p.value(); err != nil {
		return err
	}
	p.problem(path, msg)
	return nil
}

func blank(s []byte) bool { return len(bytes.TrimSpace(s)) == 0 }

// validTime reports whether s is a real time in TimeLayout: exactly
// "YYYY-MM-DD HH:MM", zero-padded, with a day that exists in its month.
func validTime(s []byte) bool {
	if len(s) != len(TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range s[i : i+n] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day, hour, minute := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2)
	return month >= 1 && month <= 12 && day >= 1 && day <= daysIn(month, year) && hour <= 23 && minute <= 59
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// The rest is a JSON syntax checker in the shape of RFC 8259's grammar.

func (p *parser) syntax(msg string) error { return &SyntaxError{Offset: p.pos, Msg: msg} }

func (p *parser) unexpected(want string) error {
	if p.pos == len(p.data) {
		return p.syntax("unexpected end of body, want " + want)
	}
	return p.syntax(fmt.Sprintf("unexpected %s, want %s", quoteByte(p.data[p.pos]), want))
}

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return strconv.QuoteRune(rune(c))
}

func (p *parser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek returns the first byte of the next value, or 0 at the end.
func (p *parser) peek() byte {
	p.ws()
	if p.pos == len(p.data) {
		return 0
	}
	return p.data[p.pos]
}

// value checks and skips the next value.
func (p *parser) value() error {
	switch c := p.peek(); {
	case c == '"':
		_, err := p.str()
		return err
	case c == '{':
		first := true
		if err := p.enter('{'); err != nil {
			return err
		}
		for {
			_, ok, err := p.member(&first)
			if err != nil || !ok {
				return err
			}
			if err := p.value(); err != nil {
				return err
			}
		}
	case c == '[':
		first := true
		if err := p.enter('['); err != nil {
			return err
		}
		for {
			ok, err := p.element(&first)
			if err != nil || !ok {
				return err
			}
			if err := p.value(); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.unexpected("a value")
	}
}

// enter consumes the opening bracket of an object or array.
func (p *parser) enter(open byte) error {
	p.ws()
	if p.pos == len(p.data) || p.data[p.pos] != open {
		return p.unexpected(strconv.QuoteRune(rune(open)))
	}
	p.depth++
	if p.depth > MaxDepth {
		return p.syntax(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
	}
	p.pos++
	return nil
}

// member reads up to and including the ':' of the next member of an object
// entered with enter, and returns its key decoded. At the closing '}' it
// consumes it and returns ok false. *first tracks whether a ',' is due.
func (p *parser) member(first *bool) (key []byte, ok bool, err error) {
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		if *first {
			p.pos++
			p.depth--
			return nil, false, nil
		}
	}
	if !*first {
		if p.pos == len(p.data) {
			return nil, false, p.unexpected(`',' or '}'`)
		}
		switch p.data[p.pos] {
		case '}':
			p.pos++
			p.depth--
			return nil, false, nil
		case ',':
			p.pos++
			p.ws()
		default:
			return nil, false, p.unexpected(`',' or '}'`)
		}
	}
	*first = false
	if p.pos == len(p.data) || p.data[p.pos] != '"' {
		return nil, false, p.unexpected("a string key")
	}
	if key, err = p.str(); err != nil {
		return nil, false, err
	}
	p.ws()
	if p.pos == len(p.data) || p.data[p.pos] != ':' {
		return nil, false, p.unexpected(`':'`)
	}
	p.pos++
	return key, true, nil
}

// element positions at the next element of an array entered with enter. At
// the closing ']' it consumes it and returns false.
func (p *parser) element(first *bool) (bool, error) {
	p.ws()
	if p.pos == len(p.data) {
		return false, p.unexpected(`a value or ']'`)
	}
	switch c := p.data[p.pos]; {
	case c == ']':
		p.pos++
		p.depth--
		return false, nil
	case *first:
		*first = false
		return true, nil
	case c == ',':
		p.pos++
		return true, nil
	default:
		return false, p.unexpected(`',' or ']'`)
	}
}

// str reads a string and returns its content: the raw bytes when there is no
// escape (no allocation), else a decoded copy.
func (p *parser) str() ([]byte, error) {
	start := p.pos // the opening quote
	p.pos++
	escaped := false
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !escaped {
				return p.data[start+1 : p.pos-1], nil
			}
			var s string
			if err := json.Unmarshal(p.data[start:p.pos], &s); err != nil {
				return nil, &SyntaxError{Offset: start, Msg: err.Error()} // unreachable: the escapes were checked
			}
			return []byte(s), nil
		case c == '\\':
			escaped = true
			if err := p.escape(); err != nil {
				return nil, err
			}
		case c < 0x20:
			return nil, p.syntax(fmt.Sprintf("control character %s in string", quoteByte(c)))
		default:
			p.pos++
		}
	}
	return nil, p.syntax("unterminated string")
}

// escape checks the escape sequence at p.pos and moves past it.
func (p *parser) escape() error {
	if p.pos+1 >= len(p.data) {
		p.pos = len(p.data)
		return p.syntax("unterminated string")
	}
	switch p.data[p.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.pos += 2
		return nil
	case 'u':
		if p.pos+6 > len(p.data) {
			p.pos = len(p.data)
			return p.syntax("unterminated string")
		}
		for _, h := range p.data[p.pos+2 : p.pos+6] {
			if !isHex(h) {
				return p.syntax(`invalid \u escape`)
			}
		}
		p.pos += 6
		return nil
	default:
		return p.syntax("invalid escape sequence")
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number checks a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() error {
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case p.pos < len(p.data) && p.data[p.pos] >= '1' && p.data[p.pos] <= '9':
		p.digits()
	default:
		return p.unexpected("a digit")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if !p.digits() {
			return p.unexpected("a digit")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if !p.digits() {
			return p.unexpected("a digit")
		}
	}
	return nil
}

// digits skips [0-9]* and reports whether there was at least one.
func (p *parser) digits() bool {
	start := p.pos
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	return p.pos > start
}

func (p *parser) literal(word string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		// Point at the first byte that differs.
		for i := 0; i < len(word) && p.pos < len(p.data) && p.data[p.pos] == word[i]; i++ {
			p.pos++
		}
		return p.unexpected(strconv.Quote(word))
	}
	p.pos += len(word)
	return nil
}
