//! Choosing a backend for a client: round robin over the route's backends, with ClientIP
//! affinity when the Service asks for it. The clock is passed in, so this is tested with
//! plain values.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use logic::proxy::Route;

/// Affinity entries kept before expired ones are swept.
const STICKY_SWEEP_AT: usize = 10_000;

/// One frontend's current route and balancing state (shared by its connections).
#[derive(Debug)]
pub struct Balancer {
    route: RwLock<Route>,
    next: AtomicUsize,
    /// Client → (backend, last use), for `sessionAffinity: ClientIP`.
    sticky: Mutex<HashMap<IpAddr, (SocketAddr, Instant)>>,
}

impl Balancer {
    pub fn new(route: Route) -> Balancer {
        Balancer { route: RwLock::new(route), next: AtomicUsize::new(0), sticky: Mutex::new(HashMap::new()) }
    }

    /// Take a new route (endpoints changed); clients stuck to a backend that is gone move on.
    pub fn update(&self, route: Route) {
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if route.affinity.is_none() {
            sticky.clear();
        } else {
            sticky.retain(|_, (backend, _)| route.backends.contains(backend));
        }
        *self.route.write().unwrap_or_else(|p| p.into_inner()) = route;
    }

    pub fn route(&self) -> Route {
        self.route.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The backends to try for this client, best first: its affine backend if it has a live
    /// one, then the rest in round-robin order. Empty when the Service has no endpoints.
    pub fn candidates(&self, client: IpAddr, now: Instant) -> Vec<SocketAddr> {
        let route = self.route.read().unwrap_or_else(|p| p.into_inner());
        let n = route.backends.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut order: Vec<SocketAddr> =
            route.backends[start..].iter().chain(&route.backends[..start]).copied().collect();
        if let Some(ttl) = route.affinity {
            let sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((backend, _)) = sticky.get(&client).filter(|(_, used)| now.duration_since(*used) < ttl)
                && let Some(i) = order.iter().position(|b| b == backend)
            {
                let first = order.remove(i);
                order.insert(0, first);
            }
        }
        order
    }

    /// The client was served by `backend`: remember it when affinity is on.
    pub fn served(&self, client: IpAddr, backend: SocketAddr, now: Instant) {
        let Some(ttl) = self.route.read().unwrap_or_else(|p| p.into_inner()).affinity else { return };
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if sticky.len() >= STICKY_SWEEP_AT {
            sticky.retain(|_, (_, used)| now.duration_since(*used) < ttl);
        }
        sticky.insert(client, (backend, now));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn route(backends: &[&str], affinity: Option<Duration>) -> Route {
        Route {
            service: "default/web:".into(),
            backends: backends.iter().map(|b| b.parse().expect("address")).collect(),
            affinity,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn round_robin_spreads_clients_over_every_backend() {
        let b = Balancer::new(route(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], None));
        let now = Instant::now();
        let firsts: Vec<SocketAddr> = (0..6).map(|_| b.candidates(ip("10.1.0.1"), now)[0]).collect();
        let addr = |s: &str| s.parse::<SocketAddr>().expect("address");
        assert_eq!(
            firsts,
            [
                addr("10.0.0.1:80"),
                addr("10.0.0.2:80"),
                addr("10.0.0.3:80"),
                addr("10.0.0.1:80"),
                addr("10.0.0.2:80"),
                addr("10.0.0.3:80")
            ]
        );
        // Every candidate list holds each backend once, so a failed connect can fall through.
        let mut all = b.candidates(ip("10.1.0.1"), now);
        all.sort();
        assert_eq!(all.len(), 3);
        assert!(Balancer::new(route(&[], None)).candidates(ip("10.1.0.1"), now).is_empty());
    }

    #[test]
    fn client_ip_affinity_sticks_until_the_timeout_or_the_backend_goes() {
        let ttl = Duration::from_secs(60);
        let b = Balancer::new(route(&["10.0.0.1:80", "10.0.0.2:80"], Some(ttl)));
        let t0 = Instant::now();
        let first = b.candidates(ip("10.1.0.1"), t0)[0];
        b.served(ip("10.1.0.1"), first, t0);
        for i in 1..5 {
            let now = t0 + Duration::from_secs(i);
            assert_eq!(b.candidates(ip("10.1.0.1"), now)[0], first, "same client, same backend");
            b.served(ip("10.1.0.1"), first, now);
        }
        // Another client is balanced as usual.
        let others: Vec<SocketAddr> = (0..2).map(|_| b.candidates(ip("10.1.0.2"), t0)[0]).collect();
        assert_ne!(others[0], others[1]);
        // Idle past the timeout: round robin again (two tries must reach both).
        let late = t0 + Duration::from_secs(4) + ttl;
        let picks: Vec<SocketAddr> = (0..2).map(|_| b.candidates(ip("10.1.0.1"), late)[0]).collect();
        assert_ne!(picks[0], picks[1]);
        // The backend leaving the route ends the affinity.
        b.served(ip("10.1.0.1"), first, late);
        let remaining = if first.to_string() == "10.0.0.1:80" { "10.0.0.2:80" } else { "10.0.0.1:80" };
        b.update(route(&[remaining], Some(ttl)));
        assert_eq!(b.candidates(ip("10.1.0.1"), late)[0].to_string(), remaining);
    }

    #[test]
    fn without_affinity_nothing_is_remembered() {
        let b = Balancer::new(route(&["10.0.0.1:80", "10.0.0.2:80"], None));
        let now = Instant::now();
        let first = b.candidates(ip("10.1.0.1"), now)[0];
        b.served(ip("10.1.0.1"), first, now);
        assert_ne!(b.candidates(ip("10.1.0.1"), now)[0], first);
    }
}
