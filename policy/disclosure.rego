# Package veilmatch.disclosure decides what a requester may learn about the
# entries its list shares with a counterparty list. It is fail-closed: a
# request that authz denies, an invalid input, an unknown counterparty, an
# expired list and anything no rule covers all get "none".
#
# Input: the authz input plus counterparty: {agency: {id, role, jurisdiction,
# contact}, list: {name, owner, category, jurisdiction, expires_at,
# victim_consent_roles, ngo_visible}} and disclosure_granted; or, for
# decisions, counterparties: a list of {counterparty, disclosure_granted}.
# Output: decision = {level, rules, class, liaison_contact, contact}, about
# input.counterparty; decisions = one such decision per item of
# input.counterparties, in their order. The hub asks for decisions: every
# counterparty list of an answer in one evaluation, the request judged once.
# Both come from decide, so they cannot disagree.
package veilmatch.disclosure

import data.veilmatch.authz

registry := data.veilmatch.registry

rank := {"none": 0, "count": 1, "flag": 2, "full": 3}

requester := authz.requester

decision := decide(object.get(input, "counterparty", {}), object.get(input, "disclosure_granted", false))

decisions := [decide(object.get(c, "counterparty", {}), object.get(c, "disclosure_granted", false)) |
	some c in input.counterparties
]

# decide is the decision about counterparty cp ({agency, list}); granted says
# that the list's owner approved a disclosure request for the match. It is
# undefined if authz gives no valid max_level.
decide(cp, granted) := {
	"level": capped.level,
	"rules": [rule | some rule in [b.rule, raised.rule, capped.rule]; rule != ""],
	"class": class(l, holder, capped.level),
	"liaison_contact": liaison_contact(l, capped.level),
	"contact": contact(holder, capped.level),
} if {
	l := object.get(cp, "list", null)
	holder := registered(object.get(cp, "agency", null), l)
	b := base(l, holder)
	raised := raise(b.level, granted)
	capped := cap(raised.level)
}

# registered is the registry entry of the agency that holds list l,
# provided the role and jurisdiction supplied for it (agency) and the list's
# owner agree with the registry; null otherwise.
registered(agency, l) := entry if {
	id := agency.id
	entry := registry.agencies[id]
	object.get(agency, "role", "") == object.get(entry, "role", "")
	object.get(agency, "jurisdiction", "") == object.get(entry, "jurisdiction", "")
	is_object(l)
	object.get(l, "owner", id) == id
} else := null

now_ns := time.parse_rfc3339_ns(input.time)

valid_input(l) if {
	now_ns
	is_object(l)
}

# expired holds when list l's retention ended before the request's time. An
# empty expires_at means the list does not expire.
expired(l) if {
	expires_at := object.get(l, "expires_at", "")
	expires_at != ""
	time.parse_rfc3339_ns(expires_at) < now_ns
}

victim_list(l) if l.category == "victim"

# agreement holds when a data-sharing agreement covers jurisdictions a and b.
agreement(a, b) if {
	some agreed in registry.agreements
	{j | some j in agreed.jurisdictions} == {a, b}
}

# base is the level the first matching rule grants about list l, held by
# registry entry holder, before a granted disclosure request and the
# purpose's cap are applied.
base(l, holder) := {"level": "none", "rule": "authz.denied"} if {
	not authz.allow
} else := {"level": "none", "rule": "input.invalid"} if {
	not valid_input(l)
} else := {"level": "none", "rule": "counterparty.unknown"} if {
	holder == null
} else := {"level": "none", "rule": "list.expired"} if {
	expired(l)
} else := {"level": "full", "rule": "victim.consent"} if {
	victim_list(l)
	requester.role in l.victim_consent_roles
} else := {"level": "flag", "rule": "victim.flag"} if {
	victim_list(l)
} else := {"level": "full", "rule": "le.same_jurisdiction"} if {
	requester.role == "law_enforcement"
	holder.role == "law_enforcement"
	requester.jurisdiction == holder.jurisdiction
} else := {"level": "full", "rule": "le.agreement"} if {
	requester.role == "law_enforcement"
	holder.role == "law_enforcement"
	agreement(requester.jurisdiction, holder.jurisdiction)
} else := {"level": "count", "rule": "le.no_agreement"} if {
	requester.role == "law_enforcement"
	holder.role == "law_enforcement"
} else := {"level": "full", "rule": "ngo.missing_person"} if {
	requester.role == "ngo"
	holder.role == "law_enforcement"
	l.category == "missing_person"
} else := {"level": "full", "rule": "ngo.opt_in"} if {
	requester.role == "ngo"
	holder.role == "law_enforcement"
	l.category in {"suspect", "ad_contact"}
	l.ngo_visible == true
} else := {"level": "count", "rule": "ngo.suspect_count"} if {
	requester.role == "ngo"
	holder.role == "law_enforcement"
	l.category in {"suspect", "ad_contact"}
} else := {"level": "none", "rule": "default.none"}

# raise applies an approved disclosure request (granted): count and flag
# become full; none stays none.
raise(level, granted) := {"level": "full", "rule": "disclosure.granted"} if {
	granted == true
	level in {"count", "flag"}
} else := {"level": level, "rule": ""}

# cap applies the purpose's cap (authz.max_level). It is undefined, and so
# is the decision, if authz gives no valid max_level.
cap(level) := {"level": authz.max_level, "rule": cap_rule} if {
	rank[level] > rank[authz.max_level]
} else := {"level": level, "rule": ""} if {
	authz.max_level in object.keys(rank)
}

default cap_rule := ""

cap_rule := authz.purpose_cap.rule

# class names the kind of counterparty without naming the agency.
class(l, holder, level) := concat("/", [part | some part in ["victim", object.get(l, "jurisdiction", "")]; part != ""]) if {
	level != "none"
	victim_list(l)
} else := concat("/", [part | some part in [holder.role, object.get(holder, "jurisdiction", "")]; part != ""]) if {
	level != "none"
} else := ""

contact(holder, level) := holder.contact if {
	level == "full"
} else := ""

liaison_contact(l, level) := registry.liaisons[l.jurisdiction] if {
	victim_list(l)
	level in {"flag", "full"}
} else := ""
