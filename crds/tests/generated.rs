//! The committed CRDs in `config/crd/` are exactly what the Rust types generate.

#[test]
fn committed_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crd");
    let mut stale = vec![];
    for (name, yaml) in rehearsal_crds::manifests::render().expect("CRDs render") {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == yaml => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "config/crd is out of date with crds/src; run `make crds` and commit:\n{}",
        stale.join("\n")
    );
}
