//! Generates the typed XenAPI layer from `spec/datamodel.json` and `spec/companion.json`.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let dm_path = dir.join("spec/datamodel.json");
    let comp_path = dir.join("spec/companion.json");
    println!("cargo:rerun-if-changed={}", dm_path.display());
    println!("cargo:rerun-if-changed={}", comp_path.display());
    let (dm, comp) = xapi_idl_codegen::parse(
        &std::fs::read_to_string(&dm_path)?,
        &std::fs::read_to_string(&comp_path)?,
    )?;
    let code = xapi_idl_codegen::generate(&dm, &comp)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("generated.rs");
    std::fs::write(out, code)?;
    Ok(())
}
