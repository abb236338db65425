package veilmatch.disclosure_test

import data.veilmatch.disclosure
import data.veilmatch.fixtures

victim_list_gb := fixtures.list("ngo-shelter", "victim")

test_le_same_jurisdiction_full if {
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", fixtures.list("police-gb", "suspect"))
	d == {
		"level": "full",
		"rules": ["le.same_jurisdiction"],
		"class": "law_enforcement/GB",
		"liaison_contact": "",
		"contact": "duty-desk@police-gb.example",
	}
}

test_le_agreement_full_both_ways if {
	gb_us := disclosure.decision with input as fixtures.match("police-gb", "investigation", fixtures.list("police-us", "ad_contact"))
	gb_us.level == "full"
	gb_us.rules == ["le.agreement"]
	gb_us.contact == "duty-desk@police-us.example"

	us_gb := disclosure.decision with input as fixtures.match("police-us", "investigation", fixtures.list("police-gb", "suspect"))
	us_gb.level == "full"
	us_gb.rules == ["le.agreement"]
}

test_le_no_agreement_count if {
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", fixtures.list("police-th", "suspect"))
	d == {
		"level": "count",
		"rules": ["le.no_agreement"],
		"class": "law_enforcement/TH",
		"liaison_contact": "",
		"contact": "",
	}
}

test_le_agreement_comes_from_data if {
	agreements := [{"jurisdictions": ["TH", "GB"]}]
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", fixtures.list("police-th", "suspect"))
		with data.veilmatch.registry.agreements as agreements
	d.level == "full"
	d.rules == ["le.agreement"]
}

test_victim_flag_hides_holder if {
	d := disclosure.decision with input as fixtures.match("police-th", "investigation", victim_list_gb)
	d == {
		"level": "flag",
		"rules": ["victim.flag"],
		"class": "victim/GB",
		"liaison_contact": "victim-liaison@gb.example",
		"contact": "",
	}
}

test_victim_flag_overrides_law_enforcement_rules if {
	l := fixtures.list("police-gb", "victim")
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", l)
	d.level == "flag"
	d.rules == ["victim.flag"]
}

test_victim_consent_full if {
	l := object.union(victim_list_gb, {"victim_consent_roles": ["law_enforcement"]})
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", l)
	d.level == "full"
	d.rules == ["victim.consent"]
	d.contact == "casework@ngo-shelter.example"
	d.liaison_contact == "victim-liaison@gb.example"
}

test_victim_consent_is_per_role if {
	l := object.union(victim_list_gb, {"victim_consent_roles": ["ngo"]})
	d := disclosure.decision with input as fixtures.match("police-us", "investigation", l)
	d.level == "flag"
}

test_ngo_missing_person_full if {
	d := disclosure.decision with input as fixtures.match("ngo-shelter", "victim_support", fixtures.list("police-th", "missing_person"))
	d.level == "full"
	d.rules == ["ngo.missing_person"]
	d.contact == "duty-desk@police-th.example"
}

test_ngo_suspect_and_ad_contact_count if {
	every category in ["suspect", "ad_contact"] {
		d := disclosure.decision with input as fixtures.match("ngo-shelter", "victim_support", fixtures.list("police-us", category))
		d.level == "count"
		d.rules == ["ngo.suspect_count"]
		d.class == "law_enforcement/US"
		d.contact == ""
	}
}

test_ngo_opt_in_full if {
	l := object.union(fixtures.list("police-gb", "suspect"), {"ngo_visible": true})
	d := disclosure.decision with input as fixtures.match("ngo-shelter", "victim_support", l)
	d.level == "full"
	d.rules == ["ngo.opt_in"]
}

test_research_caps_at_count if {
	d := disclosure.decision with input as fixtures.match("police-gb", "research", fixtures.list("police-us", "suspect"))
	d.level == "count"
	d.rules == ["le.agreement", "purpose.research_cap"]
	d.contact == ""
}

test_research_caps_victim_flag if {
	d := disclosure.decision with input as fixtures.match("ngo-shelter", "research", fixtures.list("police-gb", "victim"))
	d.level == "count"
	d.rules == ["victim.flag", "purpose.research_cap"]
	d.class == "victim/GB"
	d.liaison_contact == ""
}

test_expired_list_none if {
	l := object.union(victim_list_gb, {"expires_at": "2025-06-01T11:59:59Z", "victim_consent_roles": ["law_enforcement"]})
	req := object.union(fixtures.match("police-gb", "investigation", l), {"disclosure_granted": true})
	d := disclosure.decision with input as req
	d == {"level": "none", "rules": ["list.expired"], "class": "", "liaison_contact": "", "contact": ""}
}

test_list_without_expiry_matches if {
	l := object.union(fixtures.list("police-us", "suspect"), {"expires_at": ""})
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", l)
	d.level == "full"
}

test_list_expiring_at_request_time_matches if {
	l := object.union(fixtures.list("police-us", "suspect"), {"expires_at": fixtures.now})
	d := disclosure.decision with input as fixtures.match("police-gb", "investigation", l)
	d.level == "full"
}

test_granted_upgrades_count_and_flag if {
	count_req := object.union(fixtures.match("police-gb", "investigation", fixtures.list("police-th", "suspect")), {"disclosure_granted": true})
	from_count := disclosure.decision with input as count_req
	from_count.level == "full"
	from_count.rules == ["le.no_agreement", "disclosure.granted"]
	from_count.contact == "duty-desk@police-th.example"

	flag_req := object.union(fixtures.match("police-us", "investigation", victim_list_gb), {"disclosure_granted": true})
	from_flag := disclosure.decision with input as flag_req
	from_flag.level == "full"
	from_flag.rules == ["victim.flag", "disclosure.granted"]
}

test_granted_does_not_lift_none if {
	req := object.union(fixtures.match("police-gb", "investigation", fixtures.list("ngo-shelter", "suspect")), {"disclosure_granted": true})
	d := disclosure.decision with input as req
	d.level == "none"
	d.rules == ["default.none"]
}

test_granted_does_not_lift_research_cap if {
	req := object.union(fixtures.match("police-gb", "research", fixtures.list("police-th", "suspect")), {"disclosure_granted": true})
	d := disclosure.decision with input as req
	d.level == "count"
	d.rules == ["le.no_agreement", "disclosure.granted", "purpose.research_cap"]
}

test_uncovered_pairs_none if {
	every pair in [
		["police-gb", "investigation", fixtures.list("ngo-shelter", "ad_contact")],
		["ngo-shelter", "victim_support", fixtures.list("ngo-shelter", "suspect")],
		["ngo-shelter", "victim_support", fixtures.list("police-gb", "trafficking_route")],
	] {
		d := disclosure.decision with input as fixtures.match(pair[0], pair[1], pair[2])
		d == {"level": "none", "rules": ["default.none"], "class": "", "liaison_contact": "", "contact": ""}
	}
}

test_denied_request_none if {
	d := disclosure.decision with input as fixtures.match("auditor", "research", fixtures.list("police-gb", "suspect"))
	d.level == "none"
	d.rules == ["authz.denied"]
}

test_invalid_input_none if {
	no_time := json.remove(fixtures.match("police-gb", "investigation", fixtures.list("police-us", "suspect")), ["time"])
	d := disclosure.decision with input as no_time
	d.level == "none"
	d.rules == ["input.invalid"]

	no_list := json.remove(fixtures.match("police-gb", "investigation", fixtures.list("police-us", "suspect")), ["counterparty/list"])
	e := disclosure.decision with input as no_list
	e.level == "none"
	e.rules == ["input.invalid"]
}

test_counterparty_unknown_none if {
	req := fixtures.match("police-gb", "investigation", fixtures.list("police-us", "suspect"))
	every agency in [
		{"id": "police-fr", "role": "law_enforcement", "jurisdiction": "FR"},
		{"id": "police-us", "role": "ngo", "jurisdiction": "US"},
		{"id": "police-th", "role": "law_enforcement", "jurisdiction": "TH"},
	] {
		d := disclosure.decision with input as object.union(req, {"counterparty": {"agency": agency}})
		d.level == "none"
		d.rules == ["counterparty.unknown"]
	}
}

test_invalid_max_level_leaves_decision_undefined if {
	req := fixtures.match("police-gb", "investigation", fixtures.list("police-us", "suspect"))
	not disclosure.decision with input as req with data.veilmatch.authz.max_level as "everything"
}
