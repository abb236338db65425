# Package veilmatch.fixtures builds realistic inputs for the policy tests from
# the registry in data.json.
package veilmatch.fixtures

# now is the time of every request in the tests.
now := "2025-06-01T12:00:00Z"

# case_ref is the case reference law enforcement states in the tests.
case_ref := "GB-NCA-2025-0147"

# agency is the input form of registry agency id.
agency(id) := object.union({"id": id, "jurisdiction": ""}, data.veilmatch.registry.agencies[id])

# own_list is the requester's list that overlaps and checks run for.
own_list(owner) := {
	"name": sprintf("%s-case-phones", [owner]),
	"owner": owner,
	"kind": "phone",
	"category": "suspect",
	"jurisdiction": agency(owner).jurisdiction,
	"expires_at": "2026-06-01T00:00:00Z",
	"victim_consent_roles": [],
	"ngo_visible": false,
}

# request is an authz input for action by requester id.
request(action, id, purpose) := {
	"action": action,
	"time": now,
	"purpose": purpose,
	"case_ref": case_ref,
	"requester": agency(id),
	"list": own_list(id),
}

# list is a counterparty list of category held by owner.
list(owner, category) := {
	"name": sprintf("%s-%s", [owner, category]),
	"owner": owner,
	"kind": "phone",
	"category": category,
	"jurisdiction": agency(owner).jurisdiction,
	"expires_at": "2026-01-01T00:00:00Z",
	"victim_consent_roles": [],
	"ngo_visible": false,
}

# match is a disclosure input: requester id runs overlaps with purpose and
# shares entries with counterparty list l.
match(id, purpose, l) := object.union(request("overlaps", id, purpose), {
	"counterparty": {"agency": agency(l.owner), "list": l},
	"disclosure_granted": false,
})
