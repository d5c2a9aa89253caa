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
//   - a key that equals a known field of its object under Unicode case
//     folding (strings.EqualFold: "PASSENGERID", "departure.TIME", also
//     "food[0].ſerving" with the long s, or a Kelvin sign K for k) but is not
//     exactly it is a *ValidationError naming that key: case-insensitive
//     decoders (encoding/json is one) would take it for the field, beside or
//     instead of the value validated here;
//   - the known string fields (the required ones above and food[i].serving,
//     food[i].type, food[i].comments[j]) contain no control characters:
//     U+0000–U+001F (escaped: raw ones are malformed JSON), U+007F and the
//     C1 controls U+0080–U+009F;
//   - anywhere in the body, in keys and values of known fields or not, an
//     escaped UTF-16 surrogate must be half of a pair: a lone "\ud800", a
//     low half without a high one before it or a reversed pair is a
//     *ValidationError. RFC 8259 leaves such strings' meaning open, and
//     decoders differ: encoding/json turns each into U+FFFD, others refuse
//     the body or keep the half, so the backend could read other text than
//     was validated, and two different keys could become one;
//   - anywhere in the body, a number literal is at most MaxNumberLength
//     characters long and within float64's range: a magnitude that rounds
//     past math.MaxFloat64 (1e309; encoding/json refuses it as "out of
//     range") is a *ValidationError, one that rounds to zero (1e-400) is not;
//   - other unknown fields are allowed and not looked at; in particular they
//     may hold control characters, which JSON escapes unambiguously, so every
//     decoder reads the text that was sent.
//
// A problem inside an unknown or wrong-typed value is reported at the path of
// the member that holds it ("x" for {"x":{"y":[1e999]}}); a key with a lone
// surrogate is named as it is written, escapes included.
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
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// TimeLayout is the layout of departure.time and arrival.time.
const TimeLayout = "2006-01-02 15:04"

// MaxDepth bounds how deeply arrays and objects may nest, so that a hostile
// body cannot make the recursive walk use unbounded stack.
const MaxDepth = 1000

// MaxNumberLength bounds the characters of one number literal (sign, digits,
// point and exponent). float64 holds 17 significant digits; the bound leaves
// room for any honest spelling and keeps a decoder from big-number work.
const MaxNumberLength = 100

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
	msgRequired    = "is required"
	msgBlank       = "must not be blank"
	msgString      = "must be a string"
	msgObject      = "must be an object"
	msgArray       = "must be an array"
	msgTime        = `must be a time like "2006-01-02 15:04"`
	msgAfter       = "must be after departure.time"
	msgDuplicate   = "must appear only once"
	msgControl     = "must not contain control characters (U+0000–U+001F, U+007F–U+009F)"
	msgSurrogate   = `must not contain a lone UTF-16 surrogate escape (like "\ud800" without its low half)`
	msgNumberRange = "must not contain a number beyond float64's range (±1.7976931348623157e308)"
)

// msgNumberLength, msgCaseVariant: problem descriptions built from a value.
var msgNumberLength = "must not contain a number longer than " + strconv.Itoa(MaxNumberLength) + " characters"

func msgCaseVariant(field string) string {
	return "matches " + field + " under case folding; use the exact name"
}

// rootPath names the body itself in ValidationError.Fields.
const rootPath = "$"

// The known fields of each object, for the case-folding rule. All are ASCII
// letters, which foldsTo relies on.
var (
	registrationFields = [...]string{"passengerId", "class", "train", "departure", "arrival", "food"}
	endpointFields     = [...]string{"time", "station"}
	servingFields      = [...]string{"serving", "type", "comments"}
)

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

// loc names a place in the body: head[i-1].tail[j-1].key, each part only
// when set (i and j are an index plus one, so that 0 means none). The path is
// built only when a problem is reported there, so a valid body builds none.
type loc struct {
	head string // "$", a top-level field, or "" before a top-level key
	i    int    // food[i-1]
	tail string // a field of departure, arrival or food[i-1]
	j    int    // comments[j-1]
	key  []byte // an unknown or case-variant key, last
}

func (l *loc) path() string {
	if l.i == 0 && l.tail == "" && l.j == 0 && l.key == nil {
		return l.head
	}
	var b strings.Builder
	b.Grow(len(l.head) + len(l.tail) + len(l.key) + 2*len("[999].")) // one allocation
	b.WriteString(l.head)
	if l.i > 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(l.i - 1))
		b.WriteByte(']')
	}
	if l.tail != "" {
		b.WriteByte('.')
		b.WriteString(l.tail)
	}
	if l.j > 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(l.j - 1))
		b.WriteByte(']')
	}
	if l.key != nil {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(l.key)
	}
	return b.String()
}

// field returns the loc of member name of the object at l.
func (l *loc) field(name string) loc {
	f := *l
	if f.head == "" {
		f.head = name
	} else {
		f.tail = name
	}
	return f
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

// problemAt is problem for the path at names.
func (p *parser) problemAt(at *loc, msg string) { p.problem(at.path(), msg) }

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
		if err := p.wrongType(&loc{head: rootPath}, "must be a JSON object"); err != nil {
			return err
		}
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
	var obj loc         // the top level: its fields are named bare
	first := true
	if err := p.enter('{'); err != nil {
		return err
	}
	for {
		key, ok, err := p.memberOf(&first, &obj)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		var bit int
		var name string
		switch string(key) { // no allocation: the compiler compares in place
		case "passengerId":
			bit, name = fPassengerID, "passengerId"
		case "class":
			bit, name = fClass, "class"
		case "train":
			bit, name = fTrain, "train"
		case "departure":
			bit, name = fDeparture, "departure"
		case "arrival":
			bit, name = fArrival, "arrival"
		case "food":
			bit, name = fFood, "food"
		default:
			if err := p.other(&obj, key, registrationFields[:]); err != nil {
				return err
			}
			continue
		}
		at := loc{head: name}
		if seen&bit != 0 {
			p.problemAt(&at, msgDuplicate)
		}
		seen |= bit
		switch bit {
		case fDeparture:
			dep, err = p.endpoint(&at)
		case fArrival:
			arr, err = p.endpoint(&at)
		case fFood:
			err = p.food()
		default:
			_, err = p.requiredString(&at)
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

// other skips the value of key, which is no known field of the object at obj
// (whose known fields are names). A key that matches one of names under case
// folding is a problem: a case-insensitive decoder would take it for that
// field.
func (p *parser) other(obj *loc, key []byte, names []string) error {
	at := *obj
	at.key = key
	for _, name := range names {
		if foldsTo(key, name) {
			known := obj.field(name)
			p.problemAt(&at, msgCaseVariant(known.path()))
			break
		}
	}
	return p.value(&at)
}

// endpoint checks departure or arrival, at at, and returns its time when
// well-formed.
func (p *parser) endpoint(at *loc) (when []byte, err error) {
	if p.peek() != '{' {
		return nil, p.wrongType(at, msgObject)
	}
	const fTime, fStation = 1, 2
	var seen int
	first := true
	if err := p.enter('{'); err != nil {
		return nil, err
	}
	for {
		key, ok, err := p.memberOf(&first, at)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "time":
			timeAt := at.field("time")
			if seen&fTime != 0 {
				p.problemAt(&timeAt, msgDuplicate)
			}
			seen |= fTime
			s, err := p.requiredString(&timeAt)
			if err != nil {
				return nil, err
			}
			if s != nil {
				if validTime(s) {
					when = s
				} else {
					p.problemAt(&timeAt, msgTime)
				}
			}
		case "station":
			stationAt := at.field("station")
			if seen&fStation != 0 {
				p.problemAt(&stationAt, msgDuplicate)
			}
			seen |= fStation
			if _, err := p.requiredString(&stationAt); err != nil {
				return nil, err
			}
		default:
			if err := p.other(at, key, endpointFields[:]); err != nil {
				return nil, err
			}
		}
	}
	if seen&fTime == 0 {
		timeAt := at.field("time")
		p.problemAt(&timeAt, msgRequired)
	}
	if seen&fStation == 0 {
		stationAt := at.field("station")
		p.problemAt(&stationAt, msgRequired)
	}
	return when, nil
}

// food checks the optional food array.
func (p *parser) food() error {
	at := loc{head: "food"}
	switch p.peek() {
	case 'n':
		return p.value(&at) // null: no food ordered
	case '[':
	default:
		return p.wrongType(&at, msgArray)
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
		if err := p.serving(&loc{head: "food", i: i + 1}); err != nil {
			return err
		}
	}
}

// serving checks food[i], at at.
func (p *parser) serving(at *loc) error {
	if p.peek() != '{' {
		return p.wrongType(at, msgObject)
	}
	const fServing, fType, fComments = 1, 2, 4
	var seen int
	first := true
	if err := p.enter('{'); err != nil {
		return err
	}
	for {
		key, ok, err := p.memberOf(&first, at)
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
			if err := p.other(at, key, servingFields[:]); err != nil {
				return err
			}
			continue
		}
		fieldAt := at.field(name)
		if seen&bit != 0 {
			p.problemAt(&fieldAt, msgDuplicate)
		}
		seen |= bit
		if bit == fComments {
			err = p.comments(&fieldAt)
		} else {
			_, err = p.requiredString(&fieldAt)
		}
		if err != nil {
			return err
		}
	}
	if seen&fServing == 0 {
		servingAt := at.field("serving")
		p.problemAt(&servingAt, msgRequired)
	}
	if seen&fType == 0 {
		typeAt := at.field("type")
		p.problemAt(&typeAt, msgRequired)
	}
	return nil
}

// comments checks food[i].comments, at at: null or an array of strings.
func (p *parser) comments(at *loc) error {
	switch p.peek() {
	case 'n':
		return p.value(at)
	case '[':
	default:
		return p.wrongType(at, msgArray)
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
		itemAt := *at
		itemAt.j = j + 1
		if p.peek() != '"' {
			if err := p.wrongType(&itemAt, msgString); err != nil {
				return err
			}
			continue
		}
		s, err := p.strAt(&itemAt)
		if err != nil {
			return err
		}
		if hasControl(s) {
			p.problemAt(&itemAt, msgControl)
		}
	}
}

// requiredString checks that the next value, at at, is a non-blank string
// without control characters and returns it decoded, or nil after recording
// a problem.
func (p *parser) requiredString(at *loc) ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.wrongType(at, msgString)
	}
	s, err := p.strAt(at)
	if err != nil {
		return nil, err
	}
	if blank(s) {
		p.problemAt(at, msgBlank)
		return nil, nil
	}
	if hasControl(s) {
		p.problemAt(at, msgControl)
		return nil, nil
	}
	return s, nil
}

// wrongType records msg for at, whose value is not of the type it needs,
// and skips that value. The type problem goes first: it is more fundamental
// than anything found inside the value.
func (p *parser) wrongType(at *loc, msg string) error {
	p.problemAt(at, msg)
	return p.value(at)
}

func blank(s []byte) bool { return len(bytes.TrimSpace(s)) == 0 }

// hasControl reports whether the valid UTF-8 s holds a C0 control
// (U+0000–U+001F), DEL (U+007F) or a C1 control (U+0080–U+009F, encoded as
// 0xC2 0x80–0x9F).
func hasControl(s []byte) bool {
	for i, c := range s {
		if c < 0x20 || c == 0x7f || (c == 0xc2 && i+1 < len(s) && s[i+1] < 0xa0) {
			return true
		}
	}
	return false
}

// foldsTo reports whether key equals name under Unicode case folding, as
// strings.EqualFold does, for a name of ASCII letters, without allocating.
// Every rune that folds to an ASCII letter takes 1 to utf8.UTFMax bytes (the
// Kelvin sign K takes 3, the long s ſ 2), which bounds the key's length.
func foldsTo(key []byte, name string) bool {
	if len(key) < len(name) || len(key) > utf8.UTFMax*len(name) {
		return false
	}
	k := 0
	for i := 0; i < len(name); i++ {
		if k == len(key) {
			return false
		}
		lower := name[i] | 0x20 // name[i] is an ASCII letter
		if c := key[k]; c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c |= 0x20
			}
			if c != lower {
				return false
			}
			k++
			continue
		}
		r, n := utf8.DecodeRune(key[k:])
		if !foldsToLetter(r, rune(lower)) {
			return false
		}
		k += n
	}
	return k == len(key)
}

// foldsToLetter reports whether the non-ASCII rune r is in the case-folding
// orbit of the lower-case ASCII letter lower (the orbit EqualFold walks).
func foldsToLetter(r, lower rune) bool {
	upper := lower - 'a' + 'A'
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == lower || f == upper {
			return true
		}
	}
	return false
}

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

// overflowDigits are the digits of 2^1024 − 2^970, halfway between
// math.MaxFloat64 and 2^1024, as far as a number of MaxNumberLength
// characters can reach: a decimal from there up rounds to ±Inf (a tie rounds
// to even, which is up), so strconv.ParseFloat refuses it.
const overflowDigits = "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910"

// inFloat64Range reports whether the well-formed JSON number lit, of at most
// MaxNumberLength characters, is a float64 for strconv.ParseFloat: not beyond
// ±math.MaxFloat64 once rounded. Numbers that round to zero are in range.
func inFloat64Range(lit []byte) bool {
	i := 0
	if lit[i] == '-' {
		i++
	}
	intStart := i
	for i < len(lit) && isDigit(lit[i]) {
		i++
	}
	intPart := lit[intStart:i]
	var fracPart []byte
	if i < len(lit) && lit[i] == '.' {
		i++
		fracStart := i
		for i < len(lit) && isDigit(lit[i]) {
			i++
		}
		fracPart = lit[fracStart:i]
	}
	exp := 0
	if i < len(lit) { // 'e' or 'E'
		i++
		neg := lit[i] == '-'
		if lit[i] == '+' || lit[i] == '-' {
			i++
		}
		for ; i < len(lit); i++ {
			if exp < 1_000_000 { // saturate: far beyond either end of float64
				exp = exp*10 + int(lit[i]-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	// digits, from the first non-zero one, and the power of ten it stands for.
	var digits []byte
	if k := firstNonZero(intPart); k >= 0 {
		exp += len(intPart) - 1 - k
		digits = intPart[k:]
	} else if k := firstNonZero(fracPart); k >= 0 {
		exp += -1 - k
		fracPart = fracPart[k:]
	} else {
		return true // zero
	}
	const maxExp = 308 // the power of ten of overflowDigits[0]: math.MaxFloat64 ≈ 1.8e308
	switch {
	case exp < maxExp:
		return true
	case exp > maxExp:
		return false
	}
	// The same power of ten as the threshold: compare digit by digit.
	n := 0
	for _, part := range [2][]byte{digits, fracPart} {
		for _, c := range part {
			if n == len(overflowDigits) {
				return true // unreachable with MaxNumberLength characters
			}
			if c != overflowDigits[n] {
				return c < overflowDigits[n]
			}
			n++
		}
	}
	return true // a prefix of the threshold's digits, which go on: below it
}

func firstNonZero(digits []byte) int {
	for k, c := range digits {
		if c != '0' {
			return k
		}
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// The rest is a JSON syntax checker in the shape of RFC 8259's grammar. Each
// value is walked with the loc that problems found inside it are reported at.

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

// value checks and skips the next value, reporting what it finds inside
// (lone surrogates, numbers out of bounds) at at.
func (p *parser) value(at *loc) error {
	switch c := p.peek(); {
	case c == '"':
		_, err := p.strAt(at)
		return err
	case c == '{':
		first := true
		if err := p.enter('{'); err != nil {
			return err
		}
		for {
			_, lone, ok, err := p.member(&first)
			if err != nil || !ok {
				return err
			}
			if lone {
				p.problemAt(at, msgSurrogate)
			}
			if err := p.value(at); err != nil {
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
			if err := p.value(at); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(at)
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

// memberOf is member for an object whose fields the validator names, at obj:
// a key with a lone surrogate is a problem there, named by the key.
func (p *parser) memberOf(first *bool, obj *loc) (key []byte, ok bool, err error) {
	key, lone, ok, err := p.member(first)
	if lone {
		at := *obj
		at.key = key
		p.problemAt(&at, msgSurrogate)
	}
	return key, ok, err
}

// member reads up to and including the ':' of the next member of an object
// entered with enter, and returns its key decoded; when the key holds a lone
// surrogate (lone true), as written between its quotes instead, since the
// decoded key is not what was sent. At the closing '}' it consumes it and
// returns ok false. *first tracks whether a ',' is due.
func (p *parser) member(first *bool) (key []byte, lone, ok bool, err error) {
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		if *first {
			p.pos++
			p.depth--
			return nil, false, false, nil
		}
	}
	if !*first {
		if p.pos == len(p.data) {
			return nil, false, false, p.unexpected(`',' or '}'`)
		}
		switch p.data[p.pos] {
		case '}':
			p.pos++
			p.depth--
			return nil, false, false, nil
		case ',':
			p.pos++
			p.ws()
		default:
			return nil, false, false, p.unexpected(`',' or '}'`)
		}
	}
	*first = false
	if p.pos == len(p.data) || p.data[p.pos] != '"' {
		return nil, false, false, p.unexpected("a string key")
	}
	start := p.pos
	if key, lone, err = p.str(); err != nil {
		return nil, false, false, err
	}
	if lone {
		key = p.data[start+1 : p.pos-1]
	}
	p.ws()
	if p.pos == len(p.data) || p.data[p.pos] != ':' {
		return nil, false, false, p.unexpected(`':'`)
	}
	p.pos++
	return key, lone, true, nil
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

// strAt reads a string value, reporting a lone surrogate in it at at.
func (p *parser) strAt(at *loc) ([]byte, error) {
	s, lone, err := p.str()
	if lone {
		p.problemAt(at, msgSurrogate)
	}
	return s, err
}

// str reads a string and returns its content: the raw bytes when there is no
// escape (no allocation), else a decoded copy. lone reports an escaped
// surrogate that is not half of a pair (decoded as U+FFFD).
func (p *parser) str() (s []byte, lone bool, err error) {
	start := p.pos // the opening quote
	p.pos++
	escaped := false
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !escaped {
				return p.data[start+1 : p.pos-1], false, nil
			}
			var s string
			if err := json.Unmarshal(p.data[start:p.pos], &s); err != nil {
				return nil, false, &SyntaxError{Offset: start, Msg: err.Error()} // unreachable: the escapes were checked
			}
			return []byte(s), lone, nil
		case c == '\\':
			escaped = true
			l, err := p.escape()
			if err != nil {
				return nil, false, err
			}
			lone = lone || l
		case c < 0x20:
			return nil, false, p.syntax(fmt.Sprintf("control character %s in string", quoteByte(c)))
		default:
			p.pos++
		}
	}
	return nil, false, p.syntax("unterminated string")
}

// escape checks the escape sequence at p.pos and moves past it; a surrogate
// pair is one sequence. lone reports a surrogate escape that is not half of a
// pair: a high one not followed by a low one, or a low one on its own (which
// includes a reversed pair).
func (p *parser) escape() (lone bool, err error) {
	if p.pos+1 >= len(p.data) {
		p.pos = len(p.data)
		return false, p.syntax("unterminated string")
	}
	switch p.data[p.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.pos += 2
		return false, nil
	case 'u':
		if p.pos+6 > len(p.data) {
			p.pos = len(p.data)
			return false, p.syntax("unterminated string")
		}
		r, ok := hex4(p.data[p.pos+2 : p.pos+6])
		if !ok {
			return false, p.syntax(`invalid \u escape`)
		}
		p.pos += 6
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00: // high: a low one must follow
			if p.pos+6 <= len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
				if low, ok := hex4(p.data[p.pos+2 : p.pos+6]); ok && utf16.IsSurrogate(low) && low >= 0xdc00 {
					p.pos += 6
					return false, nil
				}
			}
			return true, nil // what follows, if an escape, is checked on its own
		case utf16.IsSurrogate(r): // low, without a high one before it
			return true, nil
		}
		return false, nil
	default:
		return false, p.syntax("invalid escape sequence")
	}
}

// hex4 decodes the four hex digits of a \u escape.
func hex4(h []byte) (rune, bool) {
	var r rune
	for _, c := range h {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// number checks a number, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// and that a decoder can hold it: at most MaxNumberLength characters, within
// float64's range. It reports a number out of bounds at at.
func (p *parser) number(at *loc) error {
	start := p.pos
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
	switch lit := p.data[start:p.pos]; {
	case len(lit) > MaxNumberLength:
		p.problemAt(at, msgNumberLength)
	case !inFloat64Range(lit):
		p.problemAt(at, msgNumberRange)
	}
	return nil
}

// digits skips [0-9]* and reports whether there was at least one.
func (p *parser) digits() bool {
	start := p.pos
	for p.pos < len(p.data) && isDigit(p.data[p.pos]) {
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
