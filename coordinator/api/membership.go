package api

import "context"

// RemoveNode asks the cluster to remove a node; req.Force skips the quorum checks (see
// RemoveRequest). ErrRefused: the removal would leave too few voters, nothing changed.
func (c *Client) RemoveNode(ctx context.Context, req RemoveRequest) error {
	_, err := c.write(ctx, "/v1/cluster/remove", req)
	return err
}
