//! Whether the cluster serves a kind: discovery, with "not served" (no such group, version or
//! kind) told apart from discovery failing.

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, pinned_kind};

/// How the cluster serves `gvk`; None when it does not serve it; an error when discovery fails.
pub async fn served(
    client: &kube::Client,
    gvk: &GroupVersionKind,
) -> Result<Option<(ApiResource, ApiCapabilities)>, kube::Error> {
    match pinned_kind(client, gvk).await {
        Ok(found) => Ok(Some(found)),
        // The group or version is not served at all.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(kube::Error::Discovery(
            kube::error::DiscoveryError::MissingKind(_)
            | kube::error::DiscoveryError::MissingApiGroup(_)
            | kube::error::DiscoveryError::MissingResource(_),
        )) => Ok(None),
        Err(e) => Err(e),
    }
}
