package delivery

// TransportOnly makes c send every attempt through net/http's Transport, as
// it does for https endpoints, so that tests hold both paths to Deliver's
// promises.
func (c *Client) TransportOnly() *Client {
	if c.fast != nil {
		c.fast.close()
		c.fast = nil
	}
	return c
}

// Pooled is how many idle connections the h1 path keeps now.
func (c *Client) Pooled() int {
	if c.fast == nil {
		return 0
	}
	c.fast.mu.Lock()
	defer c.fast.mu.Unlock()
	return len(c.fast.pool)
}
