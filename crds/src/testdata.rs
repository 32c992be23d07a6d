//! Invalid objects and the rejection each must get, shared by the schema unit tests and the
//! end-to-end tests against a real API server (feature `testdata`).

use serde::Deserialize;

/// One invalid object and where and how it must be rejected.
#[derive(Deserialize, Debug, Clone)]
pub struct InvalidCase {
    /// What is wrong, in words.
    pub name: String,
    /// `enum` when the schema's enum rejects it; absent for CEL rules.
    #[serde(default)]
    pub rule: Option<String>,
    /// Field path the error names (empty for object-level rules).
    pub field: String,
    /// Text the error message contains.
    pub message: String,
    /// Text the API server's message contains instead, when a schema bound (maxLength, enum)
    /// rejects the object before its CEL rules run; `message` is what the CEL rule says.
    #[serde(default, rename = "serverMessage")]
    pub server_message: Option<String>,
    /// The object itself.
    pub object: serde_json::Value,
}

/// The cases of `crds/testdata/invalid-objects.yaml`.
pub fn invalid_objects() -> Vec<InvalidCase> {
    let text = include_str!("../testdata/invalid-objects.yaml");
    // The file is part of this crate; a parse failure is a bug caught by its own unit test.
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("crds/testdata/invalid-objects.yaml: {e}"))
}
