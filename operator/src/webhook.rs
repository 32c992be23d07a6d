//! The admission webhook of a trace run, without cert-manager: the operator's CA (a Secret in
//! its namespace, rotated before expiry with the old CA kept in the bundle), the driver's serving
//! certificate (a Secret mounted into the driver Job), the Service in front of the driver pod,
//! and the run's MutatingWebhookConfiguration with a service reference and the PEM CA bundle.
//! The configuration itself is built by the driver's `webhook::register`, the same code the
//! driver uses when it runs on its own.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use rehearsal_crds::Simulation;
use rehearsal_crds::keys::{OPERATOR_MANAGER, OWNED_BY_SIMULATION_LABEL};
use rehearsal_driver::webhook::register::{self, Endpoint, Registration};
use serde_json::json;

use crate::certs::{self, CaSet, CertSettings};
use crate::error::{Context, Error, Result, is_conflict};
use crate::names;
use crate::settings::Settings;

/// Certificate lifetimes from the operator's settings: renewal when a third is left.
pub fn cert_settings(settings: &Settings) -> CertSettings {
    CertSettings {
        ca_validity: settings.ca_validity,
        ca_renew_before: settings.ca_validity / 3,
        serving_validity: settings.serving_validity,
        serving_renew_before: settings.serving_validity / 3,
    }
}

/// Reads the operator's CA from its Secret, creating it on first use and rotating it when due.
pub async fn ensure_ca(client: &kube::Client, settings: &Settings) -> Result<CaSet> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let cert_settings = cert_settings(settings);
    let now = Timestamp::now();
    let existing = api.get_opt(names::CA_SECRET).await.context(|| secret_action("read", settings, names::CA_SECRET))?;
    let Some(secret) = existing else {
        let ca = certs::Ca::generate(now, &cert_settings).map_err(|e| Error::Internal(e.to_string()))?;
        let set = CaSet::new(ca);
        let secret = secret_object(names::CA_SECRET, &settings.namespace, set.to_secret_data(), BTreeMap::new());
        return match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = names::CA_SECRET, "created the webhook CA");
                Ok(set)
            }
            // Another replica (or an earlier attempt) made it first: use that one.
            Err(e) if is_conflict(&e) => {
                Err(Error::Waiting(format!("Secret {} was created meanwhile", names::CA_SECRET)))
            }
            Err(e) => Err(Error::kube(secret_action("create", settings, names::CA_SECRET), e)),
        };
    };
    let data = secret.data.clone().unwrap_or_default();
    let set = CaSet::from_secret_data(&data).map_err(|e| {
        Error::Internal(format!(
            "Secret {}/{} does not hold a usable CA ({e}); delete it and the operator makes a new one",
            settings.namespace,
            names::CA_SECRET
        ))
    })?;
    let (set, rotated) = set.rotate_if_due(now, &cert_settings).map_err(|e| Error::Internal(e.to_string()))?;
    if rotated {
        let mut updated = secret.clone();
        updated.data = Some(set.to_secret_data());
        // The resourceVersion in `updated` makes this a compare-and-swap: a concurrent rotation
        // conflicts and is retried from the stored state.
        api.replace(names::CA_SECRET, &PostParams::default(), &updated)
            .await
            .context(|| secret_action("rotate", settings, names::CA_SECRET))?;
        tracing::info!(
            secret = names::CA_SECRET,
            "rotated the webhook CA; the old one stays in the bundle until it expires"
        );
    }
    Ok(set)
}

/// Makes sure the simulation's serving certificate exists, was issued by a CA of the bundle and
/// is not due for renewal.
pub async fn ensure_serving_secret(
    client: &kube::Client,
    settings: &Settings,
    sim: &Simulation,
    ca: &CaSet,
) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let name = names::serving_secret(&sim.name_any());
    let cert_settings = cert_settings(settings);
    let now = Timestamp::now();
    let bundle = ca.bundle_pem(now);
    let service = names::service(&sim.name_any());
    if let Some(existing) = api.get_opt(&name).await.context(|| secret_action("read", settings, &name))? {
        let data = existing.data.unwrap_or_default();
        let current = certs::ServingCert::from_secret_data(&data).ok().filter(|c| {
            !certs::needs_renewal(c.not_after(), now, cert_settings.serving_renew_before)
                && c.verify(&bundle, &service, &settings.namespace, now).is_ok()
        });
        if let Some(current) = current {
            if data.get("ca.crt").map(|b| b.0.as_slice()) == Some(bundle.as_bytes()) {
                return Ok(());
            }
            // Only the bundle changed (a CA rotation): keep the key pair the driver serves.
            return apply_secret(&api, settings, sim, &name, current.to_secret_data(&bundle)).await;
        }
    }
    let serving = certs::issue_serving(ca.current(), &service, &settings.namespace, now, &cert_settings)
        .map_err(|e| Error::Internal(format!("cannot issue the serving certificate of {service}: {e}")))?;
    apply_secret(&api, settings, sim, &name, serving.to_secret_data(&bundle)).await
}

async fn apply_secret(
    api: &Api<Secret>,
    settings: &Settings,
    sim: &Simulation,
    name: &str,
    data: BTreeMap<String, ByteString>,
) -> Result<()> {
    let mut secret = secret_object(name, &settings.namespace, data, names::labels(&sim.name_any()));
    secret.metadata.owner_references = sim.controller_owner_ref(&()).map(|o| vec![o]);
    secret.type_ = Some("kubernetes.io/tls".into());
    api.patch(name, &PatchParams::apply(OPERATOR_MANAGER).force(), &Patch::Apply(&secret))
        .await
        .context(|| secret_action("write", settings, name))?;
    Ok(())
}

fn secret_object(
    name: &str,
    namespace: &str,
    data: BTreeMap<String, ByteString>,
    labels: BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

fn secret_action(verb: &str, settings: &Settings, name: &str) -> String {
    format!("{verb} Secret {}/{name}", settings.namespace)
}

/// The Service in front of the simulation's driver pod (whichever run is current).
pub async fn ensure_service(client: &kube::Client, settings: &Settings, sim: &Simulation) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), &settings.namespace);
    let sim_name = sim.name_any();
    let name = names::service(&sim_name);
    let port = sim.spec.driver.as_ref().map_or(8888, |d| d.port);
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": settings.namespace,
            "labels": names::labels(&sim_name),
            "ownerReferences": sim.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "selector": {OWNED_BY_SIMULATION_LABEL: sim_name, names::ROLE_LABEL: names::DRIVER_ROLE},
            "ports": [{"name": "webhook", "port": names::SERVICE_PORT, "targetPort": port, "protocol": "TCP"}],
        }
    });
    api.patch(&name, &PatchParams::apply(OPERATOR_MANAGER).force(), &Patch::Apply(&body))
        .await
        .context(|| format!("write Service {}/{name}", settings.namespace))?;
    Ok(())
}

/// The run's MutatingWebhookConfiguration, pointing at the Service, with the current bundle.
pub async fn ensure_configuration(
    client: &kube::Client,
    settings: &Settings,
    sim: &Simulation,
    index: u32,
    ca: &CaSet,
) -> Result<()> {
    let sim_name = sim.name_any();
    let owner = serde_json::to_value(sim.controller_owner_ref(&())).map_err(|e| Error::Internal(e.to_string()))?;
    let bundle = ca.bundle_pem(Timestamp::now());
    let registration = Registration {
        name: names::webhook_configuration(&sim_name, index),
        owner: &owner,
        simulation: &sim_name,
        endpoint: Endpoint::Service {
            namespace: settings.namespace.clone(),
            name: names::service(&sim_name),
            port: names::SERVICE_PORT,
        },
        ca_pem: bundle.as_bytes(),
        manager: OPERATOR_MANAGER,
    };
    register::register(client, &registration)
        .await
        .context(|| format!("write MutatingWebhookConfiguration {}", registration.name))
}

/// Everything a trace run needs before its Job starts.
pub async fn ensure_all(client: &kube::Client, settings: &Settings, sim: &Simulation, index: u32) -> Result<()> {
    let ca = ensure_ca(client, settings).await?;
    ensure_serving_secret(client, settings, sim, &ca).await?;
    ensure_service(client, settings, sim).await?;
    ensure_configuration(client, settings, sim, index, &ca).await
}
