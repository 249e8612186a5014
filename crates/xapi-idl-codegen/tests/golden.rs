//! The generator's output for a small fixture datamodel must match the checked-in golden file.
//! After an intended generator change, regenerate with `UPDATE_GOLDEN=1 cargo test -p xapi-idl-codegen`.

use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixture")
        .join(name);
    std::fs::read_to_string(p).expect("fixture exists")
}

#[test]
fn fixture_generates_the_golden_source() {
    let (dm, comp) =
        xapi_idl_codegen::parse(&fixture("datamodel.json"), &fixture("companion.json")).unwrap();
    let code = xapi_idl_codegen::generate(&dm, &comp).unwrap();
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/generated.rs");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &code).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).expect("golden file exists; run with UPDATE_GOLDEN=1");
    assert_eq!(
        code, want,
        "generator output changed; review and run with UPDATE_GOLDEN=1"
    );
}

#[test]
fn keyword_names_are_escaped_in_output() {
    let (dm, comp) =
        xapi_idl_codegen::parse(&fixture("datamodel.json"), &fixture("companion.json")).unwrap();
    let code = xapi_idl_codegen::generate(&dm, &comp).unwrap();
    assert!(code.contains("fn r#move(&self, ctx: &Self::Ctx, self_: crate::Ref<crate::classes::VmGuest>, to: crate::enums::Power)"));
    assert!(code.contains("pub type_: std::collections::BTreeMap<String, i64>,"));
    assert!(code.contains("BalanceSlb"));
}

#[test]
fn unknown_enum_default_is_rejected() {
    let dm_text =
        fixture("datamodel.json").replace("\"default\": \"Halted\"", "\"default\": \"Exploded\"");
    let (dm, comp) = xapi_idl_codegen::parse(&dm_text, &fixture("companion.json")).unwrap();
    assert!(xapi_idl_codegen::generate(&dm, &comp).is_err());
}
