//! Role files come from administrators and the API: parsing and validating must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(roles) = portcullis_core::role::Role::from_yaml_stream(text) {
            let traits = std::collections::BTreeMap::new();
            let checker = portcullis_core::rbac::AccessChecker::new(roles, &traits);
            let _ = checker.check_rule("user", "read");
        }
    }
});
