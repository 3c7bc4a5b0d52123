//! Casbin fixtures shared by the evaluator tests (included by path where
//! the rest of `common` is not needed).
#![allow(dead_code)]

/// A file of `tests/fixtures/casbin-examples/` (casbin-rs's examples).
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/casbin-examples")
            .join(name),
    )
    .unwrap()
}

/// `text` with each repeated line dropped after its first occurrence: the
/// reference casbin-rs moves a repeat to its last place, Go and Python
/// Casbin (and authzd) keep the first.
pub fn first_occurrences(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter(|l| seen.insert(l.split(',').map(str::trim).collect::<Vec<_>>()))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The line that decided, from casbin-rs's `enforce_ex` lines: it lists every
/// allow it saw before a deny under allow-and-deny, and the deny decided
/// (authzd reports that deny, as Go Casbin does); otherwise one line.
pub fn decided(allowed: bool, lines: Vec<Vec<String>>) -> Vec<String> {
    match allowed {
        true => lines.into_iter().next(),
        false => lines.into_iter().last(),
    }
    .unwrap_or_default()
}

/// Every casbin-rs example model authzd runs on its indexed evaluator, with
/// an example policy for it. The two pattern models are, as files, plain role
/// models; their matching is `[policy] role_matching` / `domain_matching`.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("basic_model.conf", "basic_policy.csv"),
    ("basic_model.conf", "basic_inverse_policy.csv"),
    ("basic_with_root_model.conf", "basic_policy.csv"),
    ("multi_section_model.conf", "multi_section_policy.csv"),
    ("keymatch_model.conf", "keymatch_policy.csv"),
    ("keymatch2_model.conf", "keymatch2_policy.csv"),
    ("ipmatch_model.conf", "ipmatch_policy.csv"),
    ("priority_model.conf", "priority_policy.csv"),
    ("rbac_model.conf", "rbac_policy.csv"),
    ("rbac_model.conf", "rbac_with_hierarchy_policy.csv"),
    ("rbac_model_in_multi_line.conf", "rbac_policy.csv"),
    ("rbac_model_matcher_using_in_op.conf", "rbac_policy.csv"),
    ("rbac_basic_role_model.conf", "rbac_basic_role_policy.csv"),
    ("rbac_with_deny_model.conf", "rbac_with_deny_policy.csv"),
    ("rbac_with_not_deny_model.conf", "rbac_with_deny_policy.csv"),
    (
        "rbac_with_domains_model.conf",
        "rbac_with_domains_policy.csv",
    ),
    (
        "rbac_with_domains_model.conf",
        "rbac_with_hierarchy_with_domains_policy.csv",
    ),
    (
        "rbac_with_resource_roles_model.conf",
        "rbac_with_resource_roles_policy.csv",
    ),
    (
        "rbac_with_pattern_model.conf",
        "rbac_with_pattern_policy.csv",
    ),
    (
        "rbac_with_pattern_domain_model.conf",
        "rbac_with_pattern_domain_policy.csv",
    ),
];

/// Small deterministic PRNG so a failure names its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}
