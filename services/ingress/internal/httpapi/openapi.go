package httpapi

import (
	_ "embed" // openapi.json
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// pathOpenAPI serves the API's description.
const pathOpenAPI = "/openapi.json"

// openapiDoc describes the public port: every operation and every answer it
// can give. Keep it in step with the code: TestOpenAPI_ServerAndDocumentAgree
// fails on any answer it does not list, and on any it lists that no request
// produces.
//
//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3.1 document that GET /openapi.json serves.
func OpenAPI() []byte { return slices.Clone(openapiDoc) }

// openapi serves the document, to anyone: it holds nothing secret, and a
// client's tools need it before they have a key.
func (s *Server) openapi(c echo.Context) error {
	infoOf(c).outcome = outcomeDocument
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapiDoc)
}
