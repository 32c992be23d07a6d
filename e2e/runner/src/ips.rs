//! Pod IPs: each pod the runner runs gets its own loopback address from 127.1.0.0/16.
//!
//! On Linux the whole of 127.0.0.0/8 is local, so a process can bind 127.1.0.7 with no setup.
//! An address of its own lets two pods listen on the same port, and lets a client (e.g.
//! kube-apiserver calling a driver's admission webhook) reach one pod by its `podIP`. Processes
//! still share the host's network namespace: isolation holds only for a process that binds its
//! own pod IP rather than `0.0.0.0`.

use std::{collections::HashMap, net::Ipv4Addr};

use k8s_openapi::api::core::v1::Pod;

/// The first pod IP handed out.
pub const FIRST: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);
/// The last pod IP handed out (127.1.255.255 is left out, as a subnet's broadcast address would be).
pub const LAST: Ipv4Addr = Ipv4Addr::new(127, 1, 255, 254);

/// Why a pod got no IP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// Every address of the range belongs to a live pod.
    #[error("no free pod IP: all {0} addresses of 127.1.0.0/16 are held by live pods of this node")]
    Exhausted(usize),
}

/// Which pod (by uid) holds which IP. Owned by the pod watch loop, so it needs no lock.
#[derive(Debug)]
pub struct Allocator {
    by_uid: HashMap<String, Ipv4Addr>,
    by_ip: HashMap<Ipv4Addr, String>,
    /// Where the search for a free address starts: just after the last one handed out.
    next: u32,
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator {
    /// An allocator with every address free.
    pub fn new() -> Self {
        Allocator { by_uid: HashMap::new(), by_ip: HashMap::new(), next: u32::from(FIRST) }
    }

    /// How many addresses the range holds.
    pub fn capacity() -> usize {
        // 65534: the range is far smaller than usize on any platform the runner builds for.
        (u32::from(LAST) - u32::from(FIRST) + 1) as usize
    }

    /// Whether `ip` is one the allocator hands out.
    pub fn in_range(ip: Ipv4Addr) -> bool {
        (FIRST..=LAST).contains(&ip)
    }

    /// The IP of pod `uid`: the one it holds, else a free one.
    ///
    /// Addresses are handed out round-robin rather than lowest-free, so a just-released IP is
    /// not given to the next pod at once: a client that learned the old pod's IP may still dial
    /// it for a moment, and would reach the new pod in its place.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, IpError> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Ok(*ip);
        }
        let capacity = Self::capacity();
        if self.by_ip.len() >= capacity {
            return Err(IpError::Exhausted(capacity));
        }
        let (first, last) = (u32::from(FIRST), u32::from(LAST));
        let mut candidate = self.next;
        // At most one full turn: there is a free address, since fewer than `capacity` are held.
        for _ in 0..capacity {
            let ip = Ipv4Addr::from(candidate);
            candidate = if candidate >= last { first } else { candidate + 1 };
            if !self.by_ip.contains_key(&ip) {
                self.next = candidate;
                self.by_uid.insert(uid.to_owned(), ip);
                self.by_ip.insert(ip, uid.to_owned());
                return Ok(ip);
            }
        }
        Err(IpError::Exhausted(capacity))
    }

    /// Records that pod `uid` holds `ip` (an address a previous runner reported for it), so it
    /// is not handed out while that pod may still look alive. Returns whether it is now held by
    /// `uid`: false for an address outside the range, one held by another pod, or when `uid`
    /// already holds another address.
    pub fn reserve(&mut self, uid: &str, ip: Ipv4Addr) -> bool {
        if !Self::in_range(ip) {
            return false;
        }
        match (self.by_uid.get(uid), self.by_ip.get(&ip)) {
            (Some(held), _) => *held == ip,
            (None, Some(_)) => false,
            (None, None) => {
                self.by_uid.insert(uid.to_owned(), ip);
                self.by_ip.insert(ip, uid.to_owned());
                true
            }
        }
    }

    /// Frees the address of pod `uid` (once its processes have ended); returns it, if it had one.
    pub fn release(&mut self, uid: &str) -> Option<Ipv4Addr> {
        let ip = self.by_uid.remove(uid)?;
        self.by_ip.remove(&ip);
        Some(ip)
    }

    /// Frees the addresses of every pod for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = self.by_uid.keys().filter(|uid| !keep(uid)).cloned().collect();
        for uid in gone {
            self.release(&uid);
        }
    }

    /// The address pod `uid` holds. The runner learns it from `allocate`; tests inspect.
    #[cfg(test)]
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_uid.get(uid).copied()
    }

    /// How many addresses are held (for tests).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.by_uid.len()
    }
}

/// The pod IP a pod's status reports (`podIP`, else the first of `podIPs`), if it is an IPv4
/// address at all.
pub fn reported(pod: &Pod) -> Option<Ipv4Addr> {
    let status = pod.status.as_ref()?;
    let text = status.pod_ip.clone().or_else(|| status.pod_ips.as_ref()?.first().map(|ip| ip.ip.clone()))?;
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::{
        io::ErrorKind,
        net::{SocketAddr, TcpListener, TcpStream},
        time::{Duration, Instant},
    };

    use k8s_openapi::api::core::v1::{PodIP, PodStatus};

    use super::*;

    #[test]
    fn allocates_distinct_addresses_in_range_and_is_idempotent_per_pod() {
        let mut ips = Allocator::new();
        let a = ips.allocate("a");
        let b = ips.allocate("b");
        assert_eq!(a, Ok(Ipv4Addr::new(127, 1, 0, 1)));
        assert_eq!(b, Ok(Ipv4Addr::new(127, 1, 0, 2)));
        assert_eq!(ips.allocate("a"), a, "a pod keeps its address");
        assert_eq!(ips.get("b"), b.ok());
        assert_eq!(ips.held(), 2);
        assert_eq!(Allocator::capacity(), 65534);
        assert!(Allocator::in_range(FIRST) && Allocator::in_range(LAST));
        assert!(!Allocator::in_range(Ipv4Addr::new(127, 0, 0, 1)));
        assert!(!Allocator::in_range(Ipv4Addr::new(127, 1, 255, 255)));
        assert!(!Allocator::in_range(Ipv4Addr::new(127, 1, 0, 0)));
    }

    #[test]
    fn release_frees_the_address_and_it_is_reused_after_the_others() {
        let mut ips = Allocator::new();
        let a = ips.allocate("a").expect("a");
        let _b = ips.allocate("b").expect("b");
        assert_eq!(ips.release("a"), Some(a));
        assert_eq!(ips.release("a"), None, "releasing twice is harmless");
        assert_eq!(ips.get("a"), None);
        // Round-robin: the freed address is not the next one handed out ...
        let c = ips.allocate("c").expect("c");
        assert_eq!(c, Ipv4Addr::new(127, 1, 0, 3));
        // ... but it comes back once the rest of the range is in use.
        for i in 0..Allocator::capacity() - 3 {
            ips.allocate(&format!("filler-{i}")).expect("filler");
        }
        assert_eq!(ips.allocate("d"), Ok(a));
        // And the released pod's uid gets a fresh address, not a stale claim.
        ips.release("b");
        assert_eq!(ips.allocate("a"), Ok(Ipv4Addr::new(127, 1, 0, 2)));
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut ips = Allocator::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..Allocator::capacity() {
            let ip = ips.allocate(&format!("pod-{i}")).expect("free address");
            assert!(Allocator::in_range(ip));
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
        let error = ips.allocate("one-too-many").expect_err("range exhausted");
        assert_eq!(error, IpError::Exhausted(65534));
        assert!(error.to_string().contains("no free pod IP"), "{error}");
        assert_eq!(ips.get("one-too-many"), None);
        // A pod ending makes room again.
        let freed = ips.release("pod-100").expect("held");
        assert_eq!(ips.allocate("one-too-many"), Ok(freed));
    }

    #[test]
    fn addresses_taken_at_startup_are_not_handed_out_until_released() {
        let mut ips = Allocator::new();
        let stale = Ipv4Addr::new(127, 1, 0, 2);
        assert!(ips.reserve("old", stale));
        assert!(ips.reserve("old", stale), "reserving again for the same pod is fine");
        assert!(!ips.reserve("other", stale), "held by another pod");
        assert!(!ips.reserve("old", Ipv4Addr::new(127, 1, 0, 9)), "a pod holds one address");
        assert!(!ips.reserve("legacy", Ipv4Addr::new(127, 0, 0, 1)), "outside the range");
        assert_eq!(ips.allocate("new-1"), Ok(Ipv4Addr::new(127, 1, 0, 1)));
        assert_eq!(ips.allocate("new-2"), Ok(Ipv4Addr::new(127, 1, 0, 3)), "skips the reserved one");
        // The old pod was marked Failed: its address is free again.
        assert_eq!(ips.release("old"), Some(stale));
        assert!(ips.reserve("other", stale));
        ips.retain(|uid| uid != "new-1");
        assert_eq!(ips.get("new-1"), None);
        assert_eq!(ips.held(), 2);
    }

    #[test]
    fn reported_reads_pod_ip_then_pod_ips() {
        let mut pod = Pod::default();
        assert_eq!(reported(&pod), None);
        pod.status = Some(PodStatus { pod_ips: Some(vec![PodIP { ip: "127.1.0.4".into() }]), ..Default::default() });
        assert_eq!(reported(&pod), Some(Ipv4Addr::new(127, 1, 0, 4)));
        pod.status = Some(PodStatus { pod_ip: Some("127.1.2.3".into()), ..Default::default() });
        assert_eq!(reported(&pod), Some(Ipv4Addr::new(127, 1, 2, 3)));
        pod.status = Some(PodStatus { pod_ip: Some("fd00::1".into()), ..Default::default() });
        assert_eq!(reported(&pod), None);
    }

    /// Accepts the connection just made to `listener`, waiting a little for the handshake.
    fn accepts(listener: &TcpListener) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match listener.accept() {
                Ok(_) => return true,
                Err(error) if error.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return false,
            }
        }
    }

    #[test]
    fn two_pod_ips_listen_on_the_same_port_at_once() {
        let mut ips = Allocator::new();
        let first = ips.allocate("first").expect("first");
        let second = ips.allocate("second").expect("second");
        assert_ne!(first, second);
        // Port 0 would give each its own port; the point is one fixed port on both. The port
        // the kernel picks on the first address may be in use on the second, so try a few.
        let mut bound = None;
        for _ in 0..20 {
            let a = TcpListener::bind((first, 0)).expect("bind the first pod IP");
            let port = a.local_addr().expect("local address").port();
            if let Ok(b) = TcpListener::bind((second, port)) {
                bound = Some((a, b, port));
                break;
            }
        }
        let (a, b, port) = bound.expect("one port bound on both pod IPs");
        assert_eq!(a.local_addr().ok(), Some(SocketAddr::from((first, port))));
        assert_eq!(b.local_addr().ok(), Some(SocketAddr::from((second, port))));
        // The same address and port twice is refused: the addresses really are separate.
        assert!(TcpListener::bind((first, port)).is_err());

        // Each connection reaches the listener of the address it was made to.
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        let _to_second = TcpStream::connect((second, port)).expect("connect to the second pod IP");
        assert!(accepts(&b), "the second pod's listener gets its connection");
        assert!(matches!(a.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock), "not the first's");
        let _to_first = TcpStream::connect((first, port)).expect("connect to the first pod IP");
        assert!(accepts(&a), "the first pod's listener gets its connection");
    }
}
