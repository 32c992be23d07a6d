//! Plays kube-proxy for the runner's node: a Service whose ClusterIP is a loopback address (the
//! sandbox's service range is 127.2.0.0/16) is served on `<clusterIP>:<port>` and each connection
//! is forwarded to a Running pod of this node that the Service selects, at `<podIP>:<targetPort>`.
//!
//! The API server reaches a webhook Service through its ClusterIP (without aggregator routing),
//! and Endpoints may not hold loopback pod IPs, so this is how a driver's webhook Service works on
//! the local control plane exactly as on a real cluster. Services and pods are followed with
//! watches (reflector stores); the backend is chosen when a connection arrives.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// One port of one Service, as it is served here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Where the runner listens: the ClusterIP and the Service port.
    pub addr: SocketAddr,
    /// The Service port's targetPort (a number or a container port name).
    pub target: Target,
}

/// A Service port's targetPort.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A port number.
    Number(u16),
    /// A named container port.
    Name(String),
}

/// The frontends of a Service: one per TCP port, when its ClusterIP is loopback and it has a
/// selector (a Service without one is backed by hand-made endpoints, which this does not serve).
pub fn frontends(svc: &Service) -> Vec<Frontend> {
    let (Some(namespace), Some(name), Some(spec)) = (&svc.metadata.namespace, &svc.metadata.name, &svc.spec) else {
        return vec![];
    };
    let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()) else { return vec![] };
    if !ip.is_loopback() || spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
        return vec![];
    }
    spec.ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            let target = match &p.target_port {
                None => Target::Number(port),
                Some(IntOrString::Int(n)) => Target::Number(u16::try_from(*n).ok()?),
                Some(IntOrString::String(s)) => Target::Name(s.clone()),
            };
            Some(Frontend { namespace: namespace.clone(), name: name.clone(), addr: SocketAddr::new(ip, port), target })
        })
        .collect()
}

/// The address of a Running pod of this node that `svc` selects, with the target port resolved
/// against the pod's container ports.
pub fn backend(svc: &Service, target: &Target, pods: &[Arc<Pod>]) -> Option<SocketAddr> {
    let selector = svc.spec.as_ref()?.selector.as_ref()?;
    pods.iter().find_map(|pod| {
        if pod.metadata.namespace != svc.metadata.namespace || pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let labels = pod.metadata.labels.as_ref()?;
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return None;
        }
        let status = pod.status.as_ref()?;
        if status.phase.as_deref() != Some("Running") {
            return None;
        }
        let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
        let port = match target {
            Target::Number(n) => *n,
            Target::Name(name) => {
                pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())).then(|| u16::try_from(p.container_port).ok()).flatten()
                })?
            }
        };
        Some(SocketAddr::new(ip, port))
    })
}

/// Follows Services and this node's pods until `shutdown`, serving each loopback frontend.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let (services, svc_writer) = reflector::store::<Service>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(Api::<Service>::all(ctx.client.clone()), watcher::Config::default()).default_backoff(),
    )
    .applied_objects();
    let node_pods = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let pod_stream =
        reflector::reflector(pod_writer, watcher(Api::<Pod>::all(ctx.client.clone()), node_pods).default_backoff())
            .for_each(|_| async {});
    let pod_task = tokio::spawn(pod_stream);

    let mut listeners: HashMap<Frontend, JoinHandle<()>> = HashMap::new();
    futures::pin_mut!(svc_stream);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = svc_stream.next() => match event {
                Some(Ok(_)) => sync(&services, &pods, &mut listeners),
                Some(Err(error)) => tracing::warn!(%error, "service watch"),
                None => break,
            },
        }
        // Deletions do not show up as applied objects: resync after every event (cheap).
        sync(&services, &pods, &mut listeners);
    }
    for (_, task) in listeners.drain() {
        task.abort();
    }
    pod_task.abort();
}

/// Starts listeners for new frontends and stops those of Services that are gone or changed.
fn sync(services: &Store<Service>, pods: &Store<Pod>, listeners: &mut HashMap<Frontend, JoinHandle<()>>) {
    let wanted: BTreeMap<Frontend, Arc<Service>> = services
        .state()
        .into_iter()
        .flat_map(|svc| frontends(&svc).into_iter().map(move |f| (f, svc.clone())))
        .collect();
    listeners.retain(|f, task| {
        let keep = wanted.contains_key(f) && !task.is_finished();
        if !keep {
            task.abort();
            tracing::info!(service = %format!("{}/{}", f.namespace, f.name), addr = %f.addr, "stopped serving");
        }
        keep
    });
    for (frontend, _) in wanted {
        if listeners.contains_key(&frontend) {
            continue;
        }
        let task = tokio::spawn(serve(frontend.clone(), services.clone(), pods.clone()));
        listeners.insert(frontend, task);
    }
}

async fn serve(frontend: Frontend, services: Store<Service>, pods: Store<Pod>) {
    let service = format!("{}/{}", frontend.namespace, frontend.name);
    let listener = match TcpListener::bind(frontend.addr).await {
        Ok(l) => l,
        Err(error) => {
            tracing::warn!(%service, addr = %frontend.addr, %error, "cannot serve the Service's ClusterIP");
            return;
        }
    };
    tracing::info!(%service, addr = %frontend.addr, "serving the Service's ClusterIP");
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%service, %error, "accept failed");
                continue;
            }
        };
        let key = reflector::ObjectRef::<Service>::new(&frontend.name).within(&frontend.namespace);
        let target = services.get(&key).and_then(|svc| backend(&svc, &frontend.target, &pods.state()));
        let service = service.clone();
        tokio::spawn(async move {
            let Some(target) = target else {
                tracing::warn!(%service, %peer, "no Running pod of this node backs the Service; connection closed");
                return;
            };
            match TcpStream::connect(target).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(error) => tracing::warn!(%service, %target, %error, "cannot reach the Service's pod"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ip: &str, target: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "hook", "namespace": "ns"},
            "spec": {"clusterIP": ip, "selector": {"app": "driver"}, "ports": [{"port": 8443, "targetPort": target}]}}))
        .expect("service literal")
    }

    fn pod(name: &str, phase: &str, ip: &str, app: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "webhook", "containerPort": 8888}]}]},
                "status": {"phase": phase, "podIP": ip}}))
            .expect("pod literal"),
        )
    }

    #[test]
    fn only_loopback_services_with_selectors_are_served() {
        let f = frontends(&svc("127.2.0.9", json!(8888)));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].addr.to_string(), &f[0].target), ("127.2.0.9:8443".to_string(), &Target::Number(8888)));
        assert!(frontends(&svc("10.0.0.9", json!(8888))).is_empty(), "not a loopback ClusterIP");
        assert!(frontends(&svc("None", json!(8888))).is_empty(), "headless");
        let mut no_selector = svc("127.2.0.9", json!(8888));
        if let Some(s) = no_selector.spec.as_mut() {
            s.selector = None;
        }
        assert!(frontends(&no_selector).is_empty());
    }

    #[test]
    fn backend_is_a_running_selected_pod_with_the_port_resolved() {
        let pods = vec![
            pod("a", "Pending", "127.1.0.1", "driver"),
            pod("b", "Running", "127.1.0.2", "other"),
            pod("c", "Running", "127.1.0.3", "driver"),
        ];
        let s = svc("127.2.0.9", json!("webhook"));
        assert_eq!(backend(&s, &Target::Name("webhook".into()), &pods), Some("127.1.0.3:8888".parse().expect("addr")));
        assert_eq!(backend(&s, &Target::Number(9000), &pods), Some("127.1.0.3:9000".parse().expect("addr")));
        assert_eq!(backend(&s, &Target::Name("nope".into()), &pods), None);
        assert_eq!(backend(&s, &Target::Number(1), &pods[..2]), None, "no running pod selected");
    }

    #[tokio::test]
    async fn a_connection_to_the_frontend_reaches_the_pod() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A "pod" listening on its own loopback address.
        let pod_listener = TcpListener::bind("127.1.200.7:0").await.expect("bind the pod's address");
        let pod_addr = pod_listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = pod_listener.accept().await {
                let _ = s.write_all(b"hello from the pod").await;
            }
        });
        let frontend_port =
            TcpListener::bind("127.2.200.7:0").await.and_then(|l| l.local_addr()).expect("free port").port();
        let service = svc("127.2.200.7", json!(pod_addr.port()));
        let mut service = service;
        if let Some(p) = service.spec.as_mut().and_then(|s| s.ports.as_mut()) {
            p[0].port = i32::from(frontend_port);
        }
        let (services, mut sw) = reflector::store::<Service>();
        let (pods, mut pw) = reflector::store::<Pod>();
        sw.apply_watcher_event(&watcher::Event::Apply(service.clone()));
        pw.apply_watcher_event(&watcher::Event::Apply(
            (*pod("p", "Running", &pod_addr.ip().to_string(), "driver")).clone(),
        ));
        let frontend = frontends(&service).remove(0);
        let task = tokio::spawn(serve(frontend.clone(), services, pods));
        let mut reply = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = TcpStream::connect(frontend.addr).await {
                let _ = s.read_to_string(&mut reply).await;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        task.abort();
        assert_eq!(reply, "hello from the pod");
    }
}
