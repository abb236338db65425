package veilmatch.authz_test

import data.veilmatch.authz
import data.veilmatch.fixtures

test_law_enforcement_overlaps_allowed if {
	d := authz.decision with input as fixtures.request("overlaps", "police-gb", "investigation")
	d.allow
	d.rules == ["authz.allowed"]
	d.max_level == "full"
}

test_every_action_allowed_for_law_enforcement if {
	every action in authz.actions {
		d := authz.decision with input as fixtures.request(action, "police-us", "missing_person_search")
		d.allow
	}
}

test_ngo_check_allowed_without_case_ref if {
	req := object.union(fixtures.request("check", "ngo-shelter", "victim_support"), {"case_ref": ""})
	d := authz.decision with input as req
	d.allow
	d.max_level == "full"
}

test_research_caps_max_level if {
	d := authz.decision with input as fixtures.request("overlaps", "police-th", "research")
	d.allow
	d.rules == ["authz.allowed", "purpose.research_cap"]
	d.reasons[1] == `purpose "research" limits disclosure to count`
	d.max_level == "count"
}

test_unknown_requester_denied if {
	req := object.union(fixtures.request("overlaps", "police-gb", "investigation"), {
		"requester": {"id": "police-fr", "role": "law_enforcement", "jurisdiction": "FR"},
		"list": object.union(fixtures.own_list("police-gb"), {"owner": "police-fr"}),
	})
	d := authz.decision with input as req
	not d.allow
	d.rules == ["requester.unknown"]
	d.reasons == [`requester "police-fr" is not in the agency registry; ask the hub operator to register the agency`]
	d.max_level == "none"
}

test_requester_mismatch_denied if {
	req := object.union(fixtures.request("overlaps", "ngo-shelter", "investigation"), {"requester": {"role": "law_enforcement"}})
	d := authz.decision with input as req
	not d.allow
	d.rules == ["requester.mismatch"]
}

test_empty_input_denied if {
	d := authz.decision with input as {}
	not d.allow
	d.rules == ["action.unknown", "requester.unknown"]
	d.max_level == "none"
}

test_auditor_overlaps_and_check_denied if {
	every action in ["overlaps", "check"] {
		d := authz.decision with input as fixtures.request(action, "auditor", "research")
		not d.allow
		d.rules == ["auditor.no_matching"]
		d.reasons == ["auditors may not run overlaps, check or receive alerts"]
	}
}

test_auditor_list_allowed if {
	d := authz.decision with input as fixtures.request("list", "auditor", "")
	d.allow
}

test_purpose_not_allowed_names_allowed_purposes if {
	d := authz.decision with input as fixtures.request("overlaps", "ngo-shelter", "investigation")
	not d.allow
	d.rules == ["purpose.not_allowed"]
	d.reasons == [`purpose "investigation" is not allowed for role ngo; allowed purposes: research, victim_support`]
}

test_purpose_missing_denied if {
	d := authz.decision with input as fixtures.request("check", "ngo-shelter", "")
	not d.allow
	d.rules == ["purpose.missing"]
	d.reasons == ["check needs a purpose; allowed purposes for role ngo: research, victim_support"]
}

test_case_ref_missing_denied if {
	every action in authz.matching_actions {
		req := object.union(fixtures.request(action, "police-gb", "investigation"), {"case_ref": ""})
		d := authz.decision with input as req
		not d.allow
		d.rules == ["case_ref.missing"]
	}
}

test_case_ref_not_needed_to_publish if {
	req := object.union(fixtures.request("publish", "police-gb", "investigation"), {"case_ref": ""})
	d := authz.decision with input as req
	d.allow
}

test_unknown_action_denied if {
	d := authz.decision with input as fixtures.request("export", "police-gb", "investigation")
	not d.allow
	d.rules == ["action.unknown"]
}

test_list_missing_denied if {
	req := json.remove(fixtures.request("publish", "police-gb", "investigation"), ["list"])
	d := authz.decision with input as req
	not d.allow
	d.rules == ["list.missing"]
}

test_list_not_owner_denied if {
	req := object.union(fixtures.request("delete", "police-gb", "investigation"), {"list": fixtures.list("police-us", "suspect")})
	d := authz.decision with input as req
	not d.allow
	d.rules == ["list.not_owner"]
	d.reasons == [`list "police-us-suspect" is not owned by police-gb; agencies may act only on their own lists`]
}

# Alerts are matching: a purpose, a case reference for law enforcement, and
# one of the requester's own lists; auditors get none.
test_alert_needs_purpose_case_and_own_list if {
	d := authz.decision with input as fixtures.request("alert", "police-gb", "investigation")
	d.allow
	no_purpose := authz.decision with input as fixtures.request("alert", "police-gb", "")
	"purpose.missing" in no_purpose.rules
	other := authz.decision with input as object.union(fixtures.request("alert", "police-gb", "investigation"), {"list": fixtures.own_list("police-us")})
	"list.not_owner" in other.rules
	auditor := authz.decision with input as fixtures.request("alert", "auditor", "research")
	"auditor.no_matching" in auditor.rules
}

# Retractions act on the requester's own lists only, and need no purpose.
test_retract_own_list_only if {
	every action in ["retract", "unretract"] {
		d := authz.decision with input as fixtures.request(action, "police-gb", "")
		d.allow
		other := authz.decision with input as object.union(fixtures.request(action, "police-gb", ""), {"list": fixtures.own_list("police-us")})
		"list.not_owner" in other.rules
	}
}
