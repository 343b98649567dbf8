//! Names outside the cluster zone go to the host's nameservers through `hickory-resolver`: it
//! sends each question with its own ID from a random port and accepts only a reply that matches
//! (ID, server, question), asks again over TCP when a UDP reply is truncated, moves on to the
//! next server on failure, and caches answers and negative answers within their TTLs (capped at
//! `CACHE_CAP`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

use crate::wire::{EDNS_PAYLOAD, Transport};

/// Forwarded answers are kept at most this long (and never longer than their records' TTL).
const CACHE_CAP: Duration = Duration::from_secs(30);

pub(crate) struct Forwarder {
    /// `None` without nameservers: every forwarded question gets SERVFAIL.
    resolver: Option<Resolver<TokioRuntimeProvider>>,
}

impl Forwarder {
    pub(crate) fn new(upstream: &[SocketAddr]) -> Forwarder {
        let servers: Vec<NameServerConfig> = upstream
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        if servers.is_empty() {
            return Forwarder { resolver: None };
        }
        let mut options = ResolverOpts::default();
        // A forwarder: never the host's /etc/hosts, questions sent as asked (always fully
        // qualified here), and give up well within a client's own timeout.
        options.use_hosts_file = ResolveHosts::Never;
        options.ndots = 0;
        options.timeout = Duration::from_secs(2);
        options.attempts = 1;
        options.positive_max_ttl = Some(CACHE_CAP);
        options.negative_max_ttl = Some(CACHE_CAP);
        options.max_active_requests = 1024;
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "dns forwarder"))
            .ok();
        Forwarder { resolver }
    }

    /// The reply to `request` (its first question) from upstream, encoded; SERVFAIL when no
    /// nameserver answers. Over UDP a reply larger than the client's payload size is truncated.
    pub(crate) async fn answer(&self, request: &Message, transport: Transport) -> Option<Vec<u8>> {
        let query = request.queries.first()?.clone();
        let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.checking_disabled = request.metadata.checking_disabled;
        reply.metadata.recursion_available = true;
        reply.add_query(query.clone());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            reply.set_edns(edns);
        }
        let looked_up = match &self.resolver {
            Some(resolver) => Some(resolver.lookup(query.name().clone(), query.query_type()).await),
            None => None,
        };
        match looked_up {
            Some(Ok(lookup)) => {
                reply.add_answers(lookup.answers().iter().cloned());
                reply.add_authorities(lookup.authorities().iter().cloned());
            }
            Some(Err(NetError::Dns(DnsError::NoRecordsFound(none)))) => {
                reply.metadata.response_code = none.response_code;
                if let Some(soa) = none.soa {
                    reply.add_authority(soa.into_record_of_rdata());
                }
            }
            Some(Err(e)) => {
                tracing::debug!(name = %query.name(), error = %e, "dns forward");
                reply.metadata.response_code = ResponseCode::ServFail;
            }
            None => reply.metadata.response_code = ResponseCode::ServFail,
        }
        let bytes = reply.to_vec().ok()?;
        let limit = request.edns.as_ref().map_or(512, |e| usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)));
        if transport == Transport::Udp && bytes.len() > limit {
            return reply.truncate().to_vec().ok();
        }
        Some(bytes)
    }
}
