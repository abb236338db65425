package veilmatch.registry_test

import data.veilmatch.registry

test_every_agency_has_role_and_contact if {
	every agency in registry.agencies {
		agency.role in registry.vocabulary.roles
		contains(agency.contact, "@")
	}
}

test_every_jurisdiction_has_liaison if {
	jurisdictions := {j | some agency in registry.agencies; j := object.get(agency, "jurisdiction", ""); j != ""}
	count(jurisdictions) > 0
	every j in jurisdictions {
		contains(registry.liaisons[j], "@")
	}
}

test_agreements_pair_distinct_jurisdictions if {
	every agreement in registry.agreements {
		count({j | some j in agreement.jurisdictions}) == 2
	}
}

test_purpose_caps_are_levels if {
	every purpose, level in registry.purpose_caps {
		level in {"none", "count", "flag", "full"}
		purpose in registry.purposes.any_role
	}
}

# The categories and roles the disclosure rules name are words of the
# vocabulary, so no rule can depend on a category the hub refuses.
test_rules_use_vocabulary if {
	every category in {"victim", "missing_person", "suspect", "ad_contact"} {
		category in registry.vocabulary.categories
	}
	every role in {"law_enforcement", "ngo", "auditor"} {
		role in registry.vocabulary.roles
	}
}
