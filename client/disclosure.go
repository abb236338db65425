package client

import (
	"context"
	"fmt"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// RequestDisclosure asks the owners behind the match reference of a flag or
// count result to disclose those matches in full, giving a reason. It
// returns the id of the request created; its owners are not named. An empty
// purpose or case reference takes the one the reference was issued under.
func (c *Client) RequestDisclosure(ctx context.Context, matchRef, reason string, q Query) (string, error) {
	if err := c.needHub(); err != nil {
		return "", err
	}
	resp, err := c.hub.RequestDisclosure(ctx, &veilmatchv1.RequestDisclosureRequest{MatchRef: matchRef, Reason: reason, Purpose: q.Purpose, CaseRef: q.CaseRef})
	if err != nil {
		return "", fmt.Errorf("request disclosure: %w", err)
	}
	return resp.GetRequestId(), nil
}

// DisclosureRequests lists pending requests against the agency's lists, or
// with outgoing the agency's own requests; all includes answered ones.
func (c *Client) DisclosureRequests(ctx context.Context, outgoing, all bool) ([]*veilmatchv1.DisclosureRequest, error) {
	if err := c.needHub(); err != nil {
		return nil, err
	}
	resp, err := c.hub.ListDisclosureRequests(ctx, &veilmatchv1.ListDisclosureRequestsRequest{Outgoing: outgoing, All: all})
	if err != nil {
		return nil, fmt.Errorf("list disclosure requests: %w", err)
	}
	return resp.GetRequests(), nil
}

// AnswerDisclosureRequest approves or refuses a request against one of the
// agency's lists.
func (c *Client) AnswerDisclosureRequest(ctx context.Context, id string, approve bool, note string) (*veilmatchv1.DisclosureRequest, error) {
	if err := c.needHub(); err != nil {
		return nil, err
	}
	resp, err := c.hub.AnswerDisclosureRequest(ctx, &veilmatchv1.AnswerDisclosureRequestRequest{RequestId: id, Approve: approve, Note: note})
	if err != nil {
		return nil, fmt.Errorf("answer disclosure request %s: %w", id, err)
	}
	return resp.GetRequest(), nil
}

// Disclosures lists who learned matches of the agency's lists in full.
func (c *Client) Disclosures(ctx context.Context) ([]*veilmatchv1.Disclosure, error) {
	if err := c.needHub(); err != nil {
		return nil, err
	}
	resp, err := c.hub.ListDisclosures(ctx, &veilmatchv1.ListDisclosuresRequest{})
	if err != nil {
		return nil, fmt.Errorf("list disclosures: %w", err)
	}
	return resp.GetDisclosures(), nil
}
