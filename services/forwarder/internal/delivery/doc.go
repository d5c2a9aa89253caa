// Package delivery POSTs a registration to the Catering backend and says what
// the answer means for the message: delivered, retry later, or give up.
package delivery
