# Package veilmatch.authz decides whether a requester may perform an action on
# the hub. It is fail-closed: a request is allowed only when the requester is
# in the registry and no deny rule fires. Every deny carries a reason that
# tells the requester what to change.
#
# Input: {action, time, purpose, case_ref, requester: {id, role,
# jurisdiction}, list: {name, owner, ...}} (list is the requester's own list).
# Output: decision = {allow, reasons, rules, max_level}.
package veilmatch.authz

registry := data.veilmatch.registry

# actions the hub knows.
actions := {
	"overlaps", "check", "request_disclosure", "approve_disclosure",
	"refuse_disclosure", "publish", "delete", "list",
	"alert", "retract", "unretract",
}

# matching_actions tell the requester whether its identifiers are held
# elsewhere: they need a stated purpose, and law enforcement a case reference.
matching_actions := {"overlaps", "check", "request_disclosure", "alert"}

# list_actions work on one of the requester's own lists.
list_actions := {"overlaps", "publish", "delete", "alert", "retract", "unretract"}

# action, purpose and requester_id are read with defaults because a "not"
# over an undefined input value would itself be undefined, not true.
action := object.get(input, "action", "")

purpose := object.get(input, "purpose", "")

requester_id := object.get(input, ["requester", "id"], "")

known_requester if requester_id in object.keys(registry.agencies)

# requester is the registry entry of the requesting agency, provided the role
# and jurisdiction the caller supplied agree with the registry.
requester := entry if {
	entry := registry.agencies[requester_id]
	object.get(input.requester, "role", "") == object.get(entry, "role", "")
	object.get(input.requester, "jurisdiction", "") == object.get(entry, "jurisdiction", "")
}

# allowed_purposes are the purposes the requester's role may state.
allowed_purposes := {p | some p in registry.purposes.by_role[requester.role]} | {p | some p in registry.purposes.any_role}

# purpose_cap is the highest level the stated purpose allows, if it is capped.
purpose_cap := {"level": level, "rule": sprintf("purpose.%s_cap", [purpose])} if {
	level := registry.purpose_caps[purpose]
}

deny contains {"rule": "requester.unknown", "reason": reason} if {
	not known_requester
	reason := sprintf("requester %q is not in the agency registry; ask the hub operator to register the agency", [requester_id])
}

deny contains {"rule": "requester.mismatch", "reason": reason} if {
	known_requester
	not requester
	reason := sprintf("role or jurisdiction given for requester %q differ from the agency registry; take them from the registry", [requester_id])
}

deny contains {"rule": "action.unknown", "reason": reason} if {
	not action in actions
	reason := sprintf("unknown action %q; use one of: %s", [action, concat(", ", sort(actions))])
}

deny contains {"rule": "auditor.no_matching", "reason": "auditors may not run overlaps, check or receive alerts"} if {
	requester.role == "auditor"
	action in {"overlaps", "check", "alert"}
}

deny contains {"rule": "purpose.missing", "reason": reason} if {
	action in matching_actions
	purpose == ""
	reason := sprintf("%s needs a purpose; allowed purposes for role %s: %s", [action, requester.role, concat(", ", sort(allowed_purposes))])
}

deny contains {"rule": "purpose.not_allowed", "reason": reason} if {
	purpose != ""
	not purpose in allowed_purposes
	reason := sprintf("purpose %q is not allowed for role %s; allowed purposes: %s", [purpose, requester.role, concat(", ", sort(allowed_purposes))])
}

deny contains {"rule": "case_ref.missing", "reason": reason} if {
	requester.role == "law_enforcement"
	action in matching_actions
	object.get(input, "case_ref", "") == ""
	reason := sprintf("law-enforcement %s needs a case reference; set case_ref to the investigation's case number", [action])
}

deny contains {"rule": "list.missing", "reason": reason} if {
	action in list_actions
	not is_object(object.get(input, "list", null))
	reason := sprintf("%s needs one of the requester's own lists", [action])
}

deny contains {"rule": "list.not_owner", "reason": reason} if {
	is_object(input.list)
	object.get(input.list, "owner", requester_id) != requester_id
	reason := sprintf("list %q is not owned by %s; agencies may act only on their own lists", [object.get(input.list, "name", ""), requester_id])
}

default allow := false

allow if {
	requester
	count(deny) == 0
}

# max_level is the highest disclosure level the request may lead to.
default max_level := "none"

max_level := purpose_cap.level if {
	allow
	purpose_cap
} else := "full" if {
	allow
}

# notes explain an allowed request.
notes contains {"rule": "authz.allowed", "reason": reason} if {
	allow
	reason := sprintf("%s allowed for %s", [action, requester_id])
}

notes contains {"rule": purpose_cap.rule, "reason": reason} if {
	allow
	reason := sprintf("purpose %q limits disclosure to %s", [purpose, purpose_cap.level])
}

findings := notes if {
	allow
} else := deny

ordered := sort([[f.rule, f.reason] | some f in findings])

decision := {
	"allow": allow,
	"reasons": [f[1] | some f in ordered],
	"rules": [f[0] | some f in ordered],
	"max_level": max_level,
}
