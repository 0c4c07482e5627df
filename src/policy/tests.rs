use std::path::PathBuf;

use runtrust_attestation::DenialCode;

use super::*;

fn h(byte: u8, len: usize) -> String {
    hex::encode(vec![byte; len])
}

const HOST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HOST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A valid policy; line numbers matter to the error tests, which edit single lines of it.
fn base() -> String {
    format!(
        r#"id = "web-prod"
description = "test policy"

[hosts]
ids = ["{HOST_A}"]
tags = ["role=web", "env=prod"]

[pcrs.sha256]
0 = ["{z}", "{one}"]
7 = [
    "{seven}",
]

[pcrs.sha1]
0 = ["{z1}"]

[[grant]]
principals = ["web-01"]
scopes = ["deploy/web/*"]

[[grant]]
principals = ["*"]
scopes = ["health/check"]

[token]
max_ttl = "15m"
default_ttl = "5m"
"#,
        z = h(0, 32),
        one = h(0x11, 32),
        seven = h(0x77, 32),
        z1 = h(0, 20)
    )
}

fn ok(text: &str) -> Policy {
    match parse("t.toml", text.as_bytes()) {
        Ok(p) => p.policy,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn err(text: &str) -> String {
    match parse("t.toml", text.as_bytes()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!(e.code(), DenialCode::PolicyMismatch);
            e.to_string()
        }
    }
}

/// `base()` with line `line` (1-based) replaced.
fn edit(line: usize, with: &str) -> String {
    let text = base();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[line - 1] = with;
    lines.join("\n") + "\n"
}

fn values(entries: &[(HashAlg, u8, Vec<u8>)]) -> PcrValues {
    let mut v = PcrValues::new();
    for (bank, index, value) in entries {
        v.insert(*bank, *index, value.clone()).unwrap();
    }
    v
}

fn golden_values() -> PcrValues {
    values(&[(HashAlg::Sha256, 0, vec![0; 32]), (HashAlg::Sha256, 7, vec![0x77; 32]), (HashAlg::Sha1, 0, vec![0; 20])])
}

#[test]
fn base_parses_into_the_model() {
    let p = ok(&base());
    assert_eq!(p.id, "web-prod");
    assert_eq!(p.description, "test policy");
    assert_eq!(p.hosts, HostSelector { ids: vec![HOST_A.into()], tags: vec!["role=web".into(), "env=prod".into()] });
    assert_eq!(p.pcrs[&HashAlg::Sha256][&0], vec![vec![0; 32], vec![0x11; 32]]);
    assert_eq!(p.pcrs[&HashAlg::Sha256][&7], vec![vec![0x77; 32]]);
    assert_eq!(p.pcrs[&HashAlg::Sha1][&0], vec![vec![0; 20]]);
    assert_eq!(p.grants.len(), 2);
    assert_eq!(
        p.token,
        TokenRules {
            max_ttl_secs: 900,
            default_ttl_secs: 300,
            single_use: false,
            max_delegation_depth: 0,
            cross_host_delegation: false
        }
    );
    assert_eq!(p.measured_boot, None);
}

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[test]
fn every_example_policy_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
            let name = path.file_stem().unwrap().to_str().unwrap();
            assert_eq!(loaded.policy.id, name, "examples are named after their id");
            n += 1;
        }
    }
    assert!(n >= 3, "{n} example policies");
}

#[test]
fn golden_sample_is_what_capture_writes() {
    // A freshly started swtpm: no firmware ran, so sha256 PCRs 0-7 are all zero.
    let mut v = PcrValues::new();
    for i in 0..=7 {
        v.insert(HashAlg::Sha256, i, vec![0; 32]).unwrap();
    }
    let text = capture("golden-sample", &v, &["deploy/web/*".into()], &[], &["role=web".into()], &[]);
    let file = std::fs::read_to_string(policies_dir().join("golden-sample.toml")).unwrap();
    assert_eq!(text, file, "regenerate policies/golden-sample.toml from capture()");
}

#[test]
fn syntax_errors_have_line_and_column() {
    assert_eq!(err(&edit(26, "max_ttl \"15m\"")), "t.toml:26:9: expected `.`, `=`");
    assert_eq!(err(&edit(6, "tags = [\"role=web\", \"env=prod\",,]")), "t.toml:6:32: invalid array: expected `]`");
    // An unclosed array is noticed where the next table starts.
    assert_eq!(err(&edit(6, "tags = [\"role=web\"")), "t.toml:8:1: invalid array: expected `]`");
    assert!(err("id = \"x\"\nid = \"y\"\n").starts_with("t.toml:2:1: "), "duplicate key");
}

#[test]
fn unknown_and_missing_fields_have_line_and_column() {
    assert_eq!(
        err(&edit(27, "max_tll = \"5m\"")),
        "t.toml:27:1: unknown field `max_tll`, expected one of `max_ttl`, `default_ttl`, `single_use`, \
         `max_delegation_depth`, `cross_host_delegation`"
    );
    assert!(err(&edit(2, "descr = \"x\"")).starts_with("t.toml:2:1: unknown field `descr`"));
    assert!(err(&edit(17, "[[grants]]")).starts_with("t.toml:17:3: unknown field `grants`"));
    assert!(err(&base().replace("id = \"web-prod\"\n", "")).contains("missing field `id`"));
    assert!(err(&edit(26, "max_ttl = 900")).starts_with("t.toml:26:11: invalid type: integer `900`, expected a string"));
    assert!(err(&edit(1, "id = 5")).starts_with("t.toml:1:6: invalid type: integer `5`"));
}

#[test]
fn pcr_value_errors_point_at_the_value() {
    // The example of the issue: a 31-byte value on line 11, column 5.
    assert_eq!(
        err(&edit(11, &format!("    \"{}\",", h(0x77, 31)))),
        "t.toml:11:5: pcrs.sha256.7: value is 31 bytes, a sha256 digest is 32"
    );
    assert_eq!(
        err(&edit(15, &format!("0 = [\"{}\"]", h(0, 32)))),
        "t.toml:15:6: pcrs.sha1.0: value is 32 bytes, a sha1 digest is 20"
    );
    assert!(err(&edit(9, &format!("0 = [\"{}\", \"{}x\"]", h(0, 32), h(1, 31))))
        .starts_with("t.toml:9:74: pcrs.sha256.0: not a hex digest"));
    assert_eq!(
        err(&edit(9, &format!("0 = [\"{}\", \"{}\"]", h(0, 32), h(0, 32).to_uppercase()))),
        "t.toml:9:74: pcrs.sha256.0: value is listed twice"
    );
    assert_eq!(err(&edit(9, "0 = []")), "t.toml:9:5: pcrs.sha256.0: list at least one acceptable value");
}

#[test]
fn pcr_key_errors_point_at_the_key() {
    assert_eq!(
        err(&edit(9, &format!("32 = [\"{}\"]", h(0, 32)))),
        "t.toml:9:1: PCR index 32 is out of range: PCR indices are 0-31"
    );
    assert_eq!(
        err(&edit(9, &format!("07 = [\"{}\"]", h(0, 32)))),
        "t.toml:9:1: \"07\" is not a PCR index: write it in decimal, 0-31"
    );
    assert_eq!(
        err(&edit(14, "[pcrs.md5]")),
        "t.toml:14:7: unknown PCR bank \"md5\": expected sha1, sha256, sha384 or sha512"
    );
    assert!(err(&edit(14, "[pcrs.SHA1]")).starts_with("t.toml:14:7: unknown PCR bank \"SHA1\""));
    // An empty bank table, and no PCR at all.
    let empty_bank = base().replace(&format!("0 = [\"{}\"]\n", h(0, 20)), "");
    assert!(err(&empty_bank).starts_with("t.toml:14:1: this PCR bank constrains no PCR"), "{}", err(&empty_bank));
    let no_pcrs = "id = \"x\"\n[hosts]\ntags = [\"a\"]\n[pcrs]\n";
    assert!(err(no_pcrs).starts_with("t.toml:4:1: pcrs: constrain at least one PCR"));
    assert!(err("id = \"x\"\n[hosts]\ntags = [\"a\"]\n").contains("missing field `pcrs`"));
}

#[test]
fn scope_and_principal_errors_point_at_the_value() {
    assert_eq!(
        err(&edit(19, "scopes = [\"deploy/web/*\", \"deploy/*/x\"]")),
        "t.toml:19:27: grant[0].scopes: \"deploy/*/x\": `*` may only end a pattern, as a whole segment"
    );
    assert!(err(&edit(23, "scopes = [\"\"]")).starts_with("t.toml:23:11: grant[1].scopes: \"\": must be 1-256"));
    assert_eq!(err(&edit(23, "scopes = []")), "t.toml:23:10: grant[1].scopes: list at least one scope pattern");
    assert!(err(&edit(18, "principals = [\"web 01\"]")).starts_with("t.toml:18:15: grant[0].principals: \"web 01\""));
    assert!(err(&edit(18, "principals = [\"a\", \"a\"]")).ends_with("principal \"a\" is listed twice"));
}

#[test]
fn host_and_id_errors_point_at_the_value() {
    assert!(err(&edit(1, "id = \"Web\"")).starts_with("t.toml:1:6: id: \"Web\": policy ids are"));
    assert!(err(&edit(1, "id = \".hidden\"")).starts_with("t.toml:1:6: id:"));
    assert!(err(&edit(1, &format!("id = \"{}\"", "a".repeat(65)))).starts_with("t.toml:1:6: id:"));
    assert!(err(&edit(2, "description = \"a\\u0007\"")).starts_with("t.toml:2:15: description: control"));
    assert!(
        err(&edit(5, "ids = [\"sha256:ABCD\"]")).starts_with("t.toml:5:8: hosts.ids: \"sha256:ABCD\": host ids are")
    );
    assert!(err(&edit(5, &format!("ids = [\"{}\"]", HOST_A.to_uppercase()))).starts_with("t.toml:5:8: hosts.ids"));
    assert!(err(&edit(6, "tags = [\"role web\"]")).starts_with("t.toml:6:9: hosts.tags: \"role web\""));
    let no_hosts =
        base().replace(&format!("ids = [\"{HOST_A}\"]\n"), "").replace("tags = [\"role=web\", \"env=prod\"]\n", "");
    assert!(err(&no_hosts).starts_with("t.toml:4:1: hosts: list at least one host id"));
    assert!(err(&edit(6, "tags = []").replace(&format!("ids = [\"{HOST_A}\"]"), "ids = []"))
        .contains("hosts: list at least one"));
}

#[test]
fn token_rules_and_bounds() {
    let with_token =
        |lines: &str| format!("{}{lines}\n", base().split("[token]").next().unwrap().to_owned() + "[token]\n");
    let t = ok(&with_token("")).token;
    assert_eq!((t.max_ttl_secs, t.default_ttl_secs), (DEFAULT_MAX_TTL_SECS, DEFAULT_DEFAULT_TTL_SECS));
    let no_token = base().split("[token]").next().unwrap().to_owned();
    assert_eq!(ok(&no_token).token, t, "[token] may be left out");
    let t = ok(&with_token("max_ttl = \"2m\"")).token;
    assert_eq!((t.max_ttl_secs, t.default_ttl_secs), (120, 120), "the default default is capped by max_ttl");
    let t = ok(&with_token(
        "max_ttl = \"24h\"\ndefault_ttl = \"90\"\nsingle_use = true\nmax_delegation_depth = 8\ncross_host_delegation = true",
    ))
    .token;
    assert_eq!(
        t,
        TokenRules {
            max_ttl_secs: 86_400,
            default_ttl_secs: 90,
            single_use: true,
            max_delegation_depth: 8,
            cross_host_delegation: true
        }
    );

    assert_eq!(
        err(&edit(26, "max_ttl = \"25h\"")),
        "t.toml:26:11: token.max_ttl: 25h is longer than the 24h a policy may allow"
    );
    assert!(err(&edit(26, "max_ttl = \"0s\"")).starts_with("t.toml:26:11: token.max_ttl: \"0s\": a duration must be"));
    assert!(err(&edit(26, "max_ttl = \"5 m\"")).starts_with("t.toml:26:11: token.max_ttl: \"5 m\" is not a duration"));
    assert_eq!(err(&edit(27, "default_ttl = \"16m\"")), "t.toml:27:15: token.default_ttl: 16m exceeds max_ttl (15m)");
    assert!(err(&with_token("max_delegation_depth = 9"))
        .starts_with("t.toml:26:24: token.max_delegation_depth: 9 is deeper"));
    assert!(err(&with_token("max_delegation_depth = -1")).starts_with("t.toml:26:24: invalid value: integer `-1`"));
    assert!(err(&with_token("cross_host_delegation = true"))
        .starts_with("t.toml:26:25: token.cross_host_delegation: delegation is off"));
}

#[test]
fn measured_boot_rules() {
    // An empty table: the log is required, debug mode forbidden, nothing else.
    let p = ok(&(base() + "\n[measured_boot]\n"));
    assert_eq!(p.measured_boot, Some(MeasuredBoot::default()));
    assert!(p.measured_boot.as_ref().unwrap().forbid_debug_mode);
    assert_eq!(p.measured_boot.unwrap().pcrs(), [0, 1, 2, 3, 4, 5, 6, 7]);
    let app = format!("sha256:{}", h(0xab, 32));
    let dbx = format!("sha256:{}", h(0xcd, 32));
    let text = base()
        + &format!(
            "\n[measured_boot]\nrequire_secure_boot = true\nallowed_boot_apps = [\"{app}\"]\n\
             forbidden_boot_apps = [\"{dbx}\"]\nrequired_dbx = [\"{dbx}\"]\nforbidden_dbx = [\"{app}\"]\n\
             kernel_cmdline_allow = [\"*ro quiet\"]\nkernel_cmdline_forbid = [\"*init=*\"]\nforbid_debug_mode = false\n"
        );
    let m = ok(&text).measured_boot.unwrap();
    assert!(m.require_secure_boot && !m.forbid_debug_mode);
    assert_eq!(m.allowed_boot_apps, Some(vec![vec![0xab; 32]]));
    assert_eq!((m.required_dbx.clone(), m.forbidden_dbx.clone()), (vec![vec![0xcd; 32]], vec![vec![0xab; 32]]));
    assert_eq!(m.kernel_cmdline_allow, ["*ro quiet"]);
    assert_eq!(m.pcrs(), [0, 1, 2, 3, 4, 5, 6, 7, 8], "a command line rule adds PCR 8");

    // Strict: unknown keys, bad digests, empty allow lists, duplicates, types — each with line:column.
    let mb = |body: &str| err(&(base() + "\n[measured_boot]\n" + body + "\n"));
    let e = mb("require_secure_boot = true\nrequire_secureboot = true");
    assert!(e.starts_with("t.toml:31:1: unknown field `require_secureboot`"), "{e}");
    let e = mb(&format!("allowed_boot_apps = [\"{}\"]", h(0xab, 32)));
    assert!(e.starts_with("t.toml:30:22: measured_boot.allowed_boot_apps: ") && e.contains("sha256:<64"), "{e}");
    let e = mb("allowed_boot_apps = [\"sha256:AB\"]");
    assert!(e.contains("expected sha256:<64 lowercase hex digits>"), "{e}");
    let e = mb("allowed_boot_apps = []");
    assert!(e.starts_with("t.toml:30:21: measured_boot.allowed_boot_apps: an empty list allows nothing"), "{e}");
    let e = mb(&format!("required_dbx = [\"{dbx}\", \"{dbx}\"]"));
    assert!(e.contains("is listed twice"), "{e}");
    let e = mb("kernel_cmdline_forbid = [\"\"]");
    assert!(e.starts_with("t.toml:30:26: measured_boot.kernel_cmdline_forbid"), "{e}");
    let e = mb("require_secure_boot = \"yes\"");
    assert!(e.starts_with("t.toml:30:23: invalid type"), "{e}");
}

#[test]
fn selects_by_id_or_by_all_tags() {
    let p = ok(&base());
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(p.selects(HOST_A, &[]), "by id, whatever its tags");
    assert!(p.selects(HOST_B, &tags(&["env=prod", "role=web", "zone=a"])), "by tags, any order, extra tags fine");
    assert!(!p.selects(HOST_B, &tags(&["role=web"])), "every listed tag is needed");
    assert!(!p.selects(HOST_B, &[]));
    assert!(!p.selects("", &[]));

    let by_id_only = ok(&edit(6, ""));
    assert!(by_id_only.selects(HOST_A, &[]));
    assert!(!by_id_only.selects(HOST_B, &tags(&["role=web"])), "no tags listed: tags select nothing");
}

#[test]
fn grants_by_principal_and_pattern() {
    let p = ok(&base());
    assert!(p.grants("web-01", "deploy/web/api"));
    assert!(p.grants("web-01", "deploy/web/api/v2"));
    assert!(p.grants("web-01", "deploy/web/*"), "a pattern equal to the grant");
    assert!(p.grants("web-01", "deploy/web/api/*"), "a narrower pattern");
    assert!(!p.grants("web-01", "deploy/db"));
    assert!(!p.grants("web-01", "deploy/web"), "the pattern's prefix is not inside it");
    assert!(!p.grants("web-01", "deploy/*"), "broader");
    assert!(!p.grants("web-02", "deploy/web/api"), "another principal");
    assert!(p.grants("web-02", "health/check"), "`*` grants any principal");
    assert!(p.grants("web-01", "health/check"));
    assert!(!p.grants("web-02", "health/check/x"), "not a pattern: exact");
    assert!(!p.grants("web-01", "deploy/web//api"), "malformed scopes are never granted");
    assert!(!p.grants("web-01", "deploy/web/a b"));
    assert!(!p.grants("web-01", ""));
    assert_eq!(p.granted_scopes("web-01").collect::<Vec<_>>(), ["deploy/web/*", "health/check"]);
    assert_eq!(p.granted_scopes("other").collect::<Vec<_>>(), ["health/check"]);
}

#[test]
fn selection_is_sha256_first() {
    let p = ok(&base());
    assert_eq!(p.selection().to_string(), "sha256:0,7+sha1:0");
    assert!(p.selection().same_pcrs(&golden_values().selection()));
}

#[test]
fn check_pcrs_passes_with_any_acceptable_value() {
    let p = ok(&base());
    p.check_pcrs(&golden_values()).unwrap();
    // The second acceptable value of PCR 0.
    let mut v = golden_values();
    v.insert(HashAlg::Sha256, 0, vec![0x11; 32]).unwrap();
    p.check_pcrs(&v).unwrap();
    // PCRs the policy does not constrain are ignored.
    v.insert(HashAlg::Sha256, 3, vec![0x33; 32]).unwrap();
    p.check_pcrs(&v).unwrap();
}

#[test]
fn check_pcrs_reports_a_wrong_value() {
    let p = ok(&base());
    let mut v = golden_values();
    v.insert(HashAlg::Sha256, 0, vec![0x22; 32]).unwrap();
    let m = p.check_pcrs(&v).unwrap_err();
    assert_eq!(m.code(), DenialCode::PcrMismatch);
    assert_eq!(
        m.mismatches,
        [PcrDiagnostic {
            bank: "sha256".into(),
            index: 0,
            acceptable: vec![h(0, 32), h(0x11, 32)],
            actual: Some(h(0x22, 32))
        }]
    );
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        serde_json::json!({"mismatches": [{"bank": "sha256", "index": 0, "acceptable": [h(0, 32), h(0x11, 32)], "actual": h(0x22, 32)}]})
    );
    assert_eq!(
        m.to_string(),
        format!("sha256 PCR 0 is {}, not the policy's acceptable values ({}, {})", h(0x22, 32), h(0, 32), h(0x11, 32))
    );
}

#[test]
fn check_pcrs_reports_missing_values() {
    let p = ok(&base());
    let v = values(&[(HashAlg::Sha256, 0, vec![0; 32]), (HashAlg::Sha256, 7, vec![0x70; 32])]);
    let m = p.check_pcrs(&v).unwrap_err();
    assert_eq!(m.mismatches.len(), 2);
    assert_eq!((m.mismatches[0].bank.as_str(), m.mismatches[0].index), ("sha256", 7));
    assert_eq!(
        m.mismatches[1],
        PcrDiagnostic { bank: "sha1".into(), index: 0, acceptable: vec![h(0, 20)], actual: None }
    );
    assert_eq!(serde_json::to_value(&m.mismatches[1]).unwrap()["actual"], serde_json::Value::Null);
    assert!(m.to_string().ends_with("; sha1 PCR 0 is missing from the PCR values"), "{m}");
    assert_eq!(p.check_pcrs(&PcrValues::new()).unwrap_err().mismatches.len(), 3);
}

#[test]
fn hash_is_sha256_of_the_bytes_comments_included() {
    let text = base();
    let loaded = parse("t.toml", text.as_bytes()).unwrap();
    assert_eq!(loaded.hash.to_vec(), HashAlg::Sha256.digest(text.as_bytes()));
    assert_eq!(loaded.hash_hex(), hex::encode(HashAlg::Sha256.digest(text.as_bytes())));
    assert_eq!(loaded.bytes, text.as_bytes());
    // Intended: the hash names the exact text, so a comment makes a new version of the same policy.
    let commented = parse("t.toml", format!("# reviewed\n{text}").as_bytes()).unwrap();
    assert_eq!(commented.policy, loaded.policy);
    assert_ne!(commented.hash, loaded.hash);
    assert_eq!(policy_hash(b""), <[u8; 32]>::try_from(HashAlg::Sha256.digest(b"")).unwrap());
}

#[test]
fn capture_round_trips() {
    let v = golden_values();
    let text = capture(
        "web-golden",
        &v,
        &["deploy/web/*".into(), "health/check".into()],
        &["web-01".into()],
        &["role=web".into()],
        &[HOST_A.into()],
    );
    let p = ok(&text);
    assert_eq!(p.id, "web-golden");
    assert!(p.selects(HOST_A, &[]) && p.selects(HOST_B, &["role=web".into()]));
    assert!(p.grants("web-01", "deploy/web/api") && !p.grants("web-02", "deploy/web/api"));
    assert!(p.selection().same_pcrs(&v.selection()));
    p.check_pcrs(&v).unwrap();
    assert_eq!(p.token.default_ttl_secs, 300);
    assert_eq!(p.token.max_ttl_secs, 900);
    assert!(text.contains("# Secure Boot policy"), "commented:\n{text}");
    assert!(text.find("[pcrs.sha256]").unwrap() < text.find("[pcrs.sha1]").unwrap());
}

#[test]
fn capture_without_scopes_grants_nothing_and_defaults_to_any_principal() {
    let text = capture("x", &golden_values(), &[], &[], &[], &[HOST_A.into()]);
    let p = ok(&text);
    assert!(p.grants.is_empty());
    assert!(text.contains("# principals = [\"*\"]"), "{text}");
    let text = capture("x", &golden_values(), &["a/*".into()], &[], &[], &[HOST_A.into()]);
    assert_eq!(ok(&text).grants, [Grant { principals: vec!["*".into()], scopes: vec!["a/*".into()] }]);
}

#[test]
fn capture_with_bad_input_fails_parse_with_a_line() {
    let text = capture("x", &golden_values(), &["a/*/b".into()], &[], &["role=web".into()], &[]);
    assert!(err(&text).contains("grant[0].scopes: \"a/*/b\""));
    let text = capture("x", &golden_values(), &[], &[], &[], &[]);
    assert!(err(&text).contains("hosts: list at least one host id"));
}

#[test]
fn size_cap() {
    let text = base();
    let at_cap = format!("{text}#{}\n", "x".repeat(MAX_POLICY_BYTES - text.len() - 2));
    assert_eq!(at_cap.len(), MAX_POLICY_BYTES);
    ok(&at_cap);
    let over = format!("{at_cap}\n");
    assert_eq!(
        err(&over),
        format!("t.toml: the policy is {} bytes; the limit is {MAX_POLICY_BYTES}", MAX_POLICY_BYTES + 1)
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(&path, vec![b'#'; 1 << 20]).unwrap();
    let e = load(&path).unwrap_err();
    assert!(matches!(e, PolicyError::TooLarge { size, .. } if size == 1 << 20), "{e}");
    let e = load(&dir.path().join("missing.toml")).unwrap_err();
    assert_eq!(e.code(), DenialCode::InternalError);
}

#[test]
fn not_utf8_has_a_position() {
    let mut bytes = b"id = \"x\"\n# caf".to_vec();
    bytes.push(0xe9);
    let e = parse("t.toml", &bytes).unwrap_err();
    assert_eq!(e.to_string(), "t.toml:2:6: not UTF-8");
    assert_eq!(e.location().and_then(|l| l.position), Some(Position { line: 2, column: 6 }));
}
