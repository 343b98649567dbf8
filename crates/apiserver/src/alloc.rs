//! Cluster IP and NodePort allocation for Services: a bitmap-free set of what is in use,
//! rebuilt from the stored Services at start (the store is the source of truth).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("provided IP is already allocated")]
    IpInUse,
    #[error("provided IP is not in the valid range. The range of valid IPs is {0}")]
    IpOutOfRange(String),
    #[error("range is full")]
    IpsExhausted,
    #[error("provided port is already allocated")]
    PortInUse,
    #[error("provided port is not in the valid range. The range of valid ports is {0}")]
    PortOutOfRange(String),
    #[error("range is full")]
    PortsExhausted,
}

#[derive(Debug)]
pub struct Allocators {
    network: u32,
    prefix: u8,
    used_ips: BTreeSet<u32>,
    next_ip: u32,
    ports: RangeInclusive<u16>,
    used_ports: BTreeSet<u16>,
    next_port: u16,
}

impl Allocators {
    pub fn new(network: Ipv4Addr, prefix: u8, ports: RangeInclusive<u16>) -> Allocators {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
        let network = u32::from(network) & mask;
        let next_port = *ports.start();
        Allocators {
            network,
            prefix,
            used_ips: BTreeSet::new(),
            next_ip: 1,
            ports,
            used_ports: BTreeSet::new(),
            next_port,
        }
    }

    fn size(&self) -> u32 {
        if self.prefix >= 32 { 1 } else { 1u32 << (32 - u32::from(self.prefix)) }
    }

    fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }

    /// The first usable address (`10.96.0.1`), reserved for the `kubernetes` Service.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Claim a specific address.
    pub fn claim_ip(&mut self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let offset = u32::from(ip).wrapping_sub(self.network);
        if offset == 0 || offset >= self.size() - 1 {
            return Err(AllocError::IpOutOfRange(self.cidr()));
        }
        if !self.used_ips.insert(offset) {
            return Err(AllocError::IpInUse);
        }
        Ok(())
    }

    /// Allocate the next free address, round-robin so a released address is not reused at once.
    pub fn allocate_ip(&mut self) -> Result<Ipv4Addr, AllocError> {
        let usable = self.size().saturating_sub(2);
        for i in 0..usable {
            let offset = 1 + (self.next_ip - 1 + i) % usable.max(1);
            // Keep the first address for the kubernetes Service.
            if offset == 1 && !self.used_ips.contains(&1) && usable > 1 {
                continue;
            }
            if self.used_ips.insert(offset) {
                self.next_ip = offset + 1;
                return Ok(Ipv4Addr::from(self.network + offset));
            }
        }
        Err(AllocError::IpsExhausted)
    }

    pub fn release_ip(&mut self, ip: Ipv4Addr) {
        self.used_ips.remove(&u32::from(ip).wrapping_sub(self.network));
    }

    pub fn claim_port(&mut self, port: u16) -> Result<(), AllocError> {
        if !self.ports.contains(&port) {
            return Err(AllocError::PortOutOfRange(format!("{}-{}", self.ports.start(), self.ports.end())));
        }
        if !self.used_ports.insert(port) {
            return Err(AllocError::PortInUse);
        }
        Ok(())
    }

    pub fn allocate_port(&mut self) -> Result<u16, AllocError> {
        let (start, end) = (*self.ports.start(), *self.ports.end());
        let count = u32::from(end - start) + 1;
        for i in 0..count {
            let port = start + ((u32::from(self.next_port - start) + i) % count) as u16;
            if self.used_ports.insert(port) {
                self.next_port = if port == end { start } else { port + 1 };
                return Ok(port);
            }
        }
        Err(AllocError::PortsExhausted)
    }

    pub fn release_port(&mut self, port: u16) {
        self.used_ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_unique_and_skip_the_reserved_first() {
        let mut a = Allocators::new(Ipv4Addr::new(10, 96, 0, 0), 29, 30000..=30002);
        // /29: .1-.6 usable; .1 reserved for the kubernetes Service.
        let got: Vec<Ipv4Addr> = (0..5).map(|_| a.allocate_ip().expect("free")).collect();
        assert_eq!(got.first(), Some(&Ipv4Addr::new(10, 96, 0, 2)));
        assert!(!got.contains(&Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(a.allocate_ip(), Err(AllocError::IpsExhausted));
        a.claim_ip(Ipv4Addr::new(10, 96, 0, 1)).expect("reserved address can be claimed");
        assert_eq!(a.claim_ip(Ipv4Addr::new(10, 96, 0, 3)), Err(AllocError::IpInUse));
        assert!(matches!(a.claim_ip(Ipv4Addr::new(10, 97, 0, 3)), Err(AllocError::IpOutOfRange(_))));
        a.release_ip(Ipv4Addr::new(10, 96, 0, 4));
        assert_eq!(a.allocate_ip(), Ok(Ipv4Addr::new(10, 96, 0, 4)));
    }

    #[test]
    fn node_ports_in_range() {
        let mut a = Allocators::new(Ipv4Addr::new(10, 96, 0, 0), 16, 30000..=30002);
        a.claim_port(30001).expect("free");
        assert_eq!(a.claim_port(30001), Err(AllocError::PortInUse));
        assert!(matches!(a.claim_port(80), Err(AllocError::PortOutOfRange(_))));
        assert_eq!(a.allocate_port(), Ok(30000));
        assert_eq!(a.allocate_port(), Ok(30002));
        assert_eq!(a.allocate_port(), Err(AllocError::PortsExhausted));
        a.release_port(30000);
        assert_eq!(a.allocate_port(), Ok(30000));
    }
}
