module github.com/railco/relay/services/catering-stub

go 1.26.0

require (
	github.com/labstack/echo/v4 v4.16.0
	github.com/railco/relay/pkg v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/labstack/gommon v0.5.0 // indirect
	github.com/mattn/go-colorable v0.1.15 // indirect
	github.com/mattn/go-isatty v0.0.22 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasttemplate v1.2.2 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)

// The shared module is not published; both workspace and GOWORK=off builds
// (Docker, a single module checked out on its own) resolve it from the tree.
replace github.com/railco/relay/pkg => ../../pkg
