# Package veilmatch.disclosure decides what a requester may learn about the
# entries its list shares with one counterparty list. It is fail-closed: a
# request that authz denies, an invalid input, an unknown counterparty, an
# expired list and anything no rule covers all get "none".
#
# Input: the authz input plus counterparty: {agency: {id, role, jurisdiction,
# contact}, list: {name, owner, category, jurisdiction, expires_at,
# victim_consent_roles, ngo_visible}} and disclosure_granted.
# Output: decision = {level, rules, class, liaison_contact, contact}.
package veilmatch.disclosure

import data.veilmatch.authz

registry := data.veilmatch.registry

rank := {"none": 0, "count": 1, "flag": 2, "full": 3}

requester := authz.requester

cp_list := input.counterparty.list

# counterparty is the registry entry of the agency that holds the counterparty
# list, provided the supplied role, jurisdiction and list owner agree with it.
counterparty := entry if {
	id := input.counterparty.agency.id
	entry := registry.agencies[id]
	object.get(input.counterparty.agency, "role", "") == object.get(entry, "role", "")
	object.get(input.counterparty.agency, "jurisdiction", "") == object.get(entry, "jurisdiction", "")
	object.get(cp_list, "owner", id) == id
}

now_ns := time.parse_rfc3339_ns(input.time)

valid_input if {
	now_ns
	is_object(cp_list)
}

# expired holds when the counterparty list's retention ended before the
# request's time. An empty expires_at means the list does not expire.
expired if {
	expires_at := object.get(cp_list, "expires_at", "")
	expires_at != ""
	time.parse_rfc3339_ns(expires_at) < now_ns
}

victim_list if cp_list.category == "victim"

both_law_enforcement if {
	requester.role == "law_enforcement"
	counterparty.role == "law_enforcement"
}

ngo_and_law_enforcement if {
	requester.role == "ngo"
	counterparty.role == "law_enforcement"
}

# agreement holds when a data-sharing agreement covers jurisdictions a and b.
agreement(a, b) if {
	some agreed in registry.agreements
	{j | some j in agreed.jurisdictions} == {a, b}
}

# base is the level the first matching rule grants, before a granted
# disclosure request and the purpose's cap are applied.
base := {"level": "none", "rule": "authz.denied"} if {
	not authz.allow
} else := {"level": "none", "rule": "input.invalid"} if {
	not valid_input
} else := {"level": "none", "rule": "counterparty.unknown"} if {
	not counterparty
} else := {"level": "none", "rule": "list.expired"} if {
	expired
} else := {"level": "full", "rule": "victim.consent"} if {
	victim_list
	requester.role in cp_list.victim_consent_roles
} else := {"level": "flag", "rule": "victim.flag"} if {
	victim_list
} else := {"level": "full", "rule": "le.same_jurisdiction"} if {
	both_law_enforcement
	requester.jurisdiction == counterparty.jurisdiction
} else := {"level": "full", "rule": "le.agreement"} if {
	both_law_enforcement
	agreement(requester.jurisdiction, counterparty.jurisdiction)
} else := {"level": "count", "rule": "le.no_agreement"} if {
	both_law_enforcement
} else := {"level": "full", "rule": "ngo.missing_person"} if {
	ngo_and_law_enforcement
	cp_list.category == "missing_person"
} else := {"level": "full", "rule": "ngo.opt_in"} if {
	ngo_and_law_enforcement
	cp_list.category in {"suspect", "ad_contact"}
	cp_list.ngo_visible == true
} else := {"level": "count", "rule": "ngo.suspect_count"} if {
	ngo_and_law_enforcement
	cp_list.category in {"suspect", "ad_contact"}
} else := {"level": "none", "rule": "default.none"}

# granted holds when an owner approved a disclosure request for this match and
# the requester may already learn something about it.
granted if {
	input.disclosure_granted == true
	rank[base.level] >= rank.count
	base.level != "full"
}

upgraded := "full" if {
	granted
} else := base.level

# capped holds when the purpose's cap lowers the level.
capped if rank[upgraded] > rank[authz.max_level]

# level is undefined, and so is the decision, if authz gives no valid max_level.
level := authz.max_level if {
	capped
} else := upgraded if {
	authz.max_level in object.keys(rank)
}

default granted_rule := ""

granted_rule := "disclosure.granted" if granted

default cap_rule := ""

cap_rule := authz.purpose_cap.rule if capped

# class names the kind of counterparty without naming the agency.
class_parts := ["victim", object.get(cp_list, "jurisdiction", "")] if {
	victim_list
} else := [counterparty.role, object.get(counterparty, "jurisdiction", "")]

default class := ""

class := concat("/", [part | some part in class_parts; part != ""]) if level != "none"

default contact := ""

contact := counterparty.contact if level == "full"

default liaison_contact := ""

liaison_contact := registry.liaisons[cp_list.jurisdiction] if {
	victim_list
	level in {"flag", "full"}
}

decision := {
	"level": level,
	"rules": [rule | some rule in [base.rule, granted_rule, cap_rule]; rule != ""],
	"class": class,
	"liaison_contact": liaison_contact,
	"contact": contact,
}
