//! The cluster zone compiled to DNS wire format, and the answer path over it.
//!
//! Every Service or EndpointSlice change compiles `logic::dns::Records` into a `Zone`: each name
//! that exists, with its A, SRV and PTR records already encoded. A query for a name in the zone
//! is then answered by reading its header and question in place, one hash lookup and a few
//! copies into the caller's buffer: no allocation, no lock (the server swaps whole `Zone`s). What
//! to answer is `Records::lookup`'s decision (the tests check that both agree on every name);
//! this module only encodes it. A name outside the zone is left to the caller
//! (`Reply::NotOurs`), which tries autopath and then forwards it.
//!
//! Written by hand rather than through `hickory-proto`'s `Message`: decoding each query into
//! owned names and records and encoding the reply was most of the 30 µs of CPU a query cost
//! through `hickory-server` (README, Performance: `ordinal bench dns`); the forwarding path still
//! uses `hickory-proto`.

use std::collections::HashMap;

use logic::dns::{Answer, Kind, Records};

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_PTR: u16 = 12;
const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
/// BADVERS (16) is an extended code: its upper bits go in the OPT record.
const EXT_RCODE_BADVERS: u8 = 1;

/// The UDP payload offered to EDNS clients (the 2020 DNS flag day's figure); clients without
/// EDNS get the classic 512 bytes.
pub const EDNS_PAYLOAD: u16 = 1232;
const CLASSIC_UDP: usize = 512;
const HEADER: usize = 12;
/// A compression pointer to the question's name, which always starts right after the header.
const QNAME_POINTER: u16 = 0xC000 | HEADER as u16;

/// How a reply travels: over UDP it must fit the client's payload size or be truncated (TC set,
/// so the client asks again over TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What `Zone::answer` did with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The reply is in the output buffer.
    Send,
    /// Not a query to answer at all (too short to carry an ID, or itself a response).
    Drop,
    /// A well-formed query for a name outside the zone.
    NotOurs,
}

/// Records of one name and type, each encoded without its owner name (type, class, TTL,
/// RDLENGTH, RDATA): the owner is written as a compression pointer when the reply is built.
#[derive(Debug, Default)]
struct RrSet {
    count: u16,
    tails: Vec<u8>,
}

impl RrSet {
    fn push(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) {
        let Ok(len) = u16::try_from(rdata.len()) else { return };
        self.tails.extend_from_slice(&rtype.to_be_bytes());
        self.tails.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.tails.extend_from_slice(&ttl.to_be_bytes());
        self.tails.extend_from_slice(&len.to_be_bytes());
        self.tails.extend_from_slice(rdata);
        self.count += 1;
    }

    /// Append every record, owned by the name at `owner` (a compression pointer).
    fn write(&self, out: &mut Vec<u8>, owner: u16) {
        let mut rest = self.tails.as_slice();
        while rest.len() >= 10 {
            let len = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
            let (record, tail) = rest.split_at(len.min(rest.len()));
            out.extend_from_slice(&owner.to_be_bytes());
            out.extend_from_slice(record);
            rest = tail;
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    a: RrSet,
    srv: RrSet,
    ptr: RrSet,
    /// In the cluster zone (negative answers carry its SOA), not a reverse name.
    in_zone: bool,
}

impl Node {
    fn rrset(&self, qtype: u16) -> Option<&RrSet> {
        let set = match qtype {
            TYPE_A => &self.a,
            TYPE_SRV => &self.srv,
            TYPE_PTR => &self.ptr,
            _ => return None,
        };
        (set.count > 0).then_some(set)
    }
}

/// The cluster zone, ready to answer from.
#[derive(Debug)]
pub struct Zone {
    /// The zone's name in wire form, lowercase.
    origin: Vec<u8>,
    /// Every name that exists (zone names and reverse names with PTR records), by lowercase
    /// wire form.
    nodes: HashMap<Box<[u8]>, Node>,
    /// The zone's SOA record without its owner, for the authority section of negative answers
    /// (resolvers cache them for its minimum TTL).
    soa: RrSet,
    ttl: u32,
}

/// `name` (dotted, no trailing dot needed) in wire form, lowercase; `None` if a label is empty
/// or longer than 63 bytes or the whole is longer than 255.
pub fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.trim_end_matches('.');
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            let len = u8::try_from(label.len()).ok().filter(|l| (1..=63).contains(l))?;
            out.push(len);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

impl Zone {
    /// Compile `records` with `ttl` on every record; `serial` is the SOA's serial.
    pub fn compile(records: &Records, ttl: u32, serial: u32) -> Zone {
        let origin = encode_name(&records.zone).unwrap_or_else(|| vec![0]);
        let mut nodes = HashMap::new();
        for name in records.names() {
            let Some(key) = encode_name(name) else { continue };
            let mut node = Node { in_zone: true, ..Node::default() };
            if let Answer::A(ips) = records.lookup(name, Kind::A) {
                for ip in ips {
                    node.a.push(TYPE_A, ttl, &ip.octets());
                }
            }
            if let Answer::Srv(targets) = records.lookup(name, Kind::Srv) {
                for srv in targets {
                    let Some(target) = encode_name(&srv.target) else { continue };
                    // Priority 0, weight 100, port, target (never compressed, RFC 2782).
                    let mut rdata = vec![0, 0, 0, 100];
                    rdata.extend_from_slice(&srv.port.to_be_bytes());
                    rdata.extend_from_slice(&target);
                    node.srv.push(TYPE_SRV, ttl, &rdata);
                }
            }
            nodes.insert(key.into_boxed_slice(), node);
        }
        for name in records.reverse_names() {
            let (Some(key), Answer::Ptr(target)) = (encode_name(name), records.lookup(name, Kind::Ptr)) else {
                continue;
            };
            let Some(target) = encode_name(&target) else { continue };
            let mut node = Node::default();
            node.ptr.push(TYPE_PTR, ttl, &target);
            nodes.insert(key.into_boxed_slice(), node);
        }
        // As CoreDNS writes it: ns.dns.<zone>, hostmaster.<zone>, refresh 2 h, retry 30 min,
        // expire 1 day, negative TTL the records' TTL.
        let mut soa = RrSet::default();
        let mut rdata = encode_name(&format!("ns.dns.{}", records.zone)).unwrap_or_else(|| vec![0]);
        rdata.extend(encode_name(&format!("hostmaster.{}", records.zone)).unwrap_or_else(|| vec![0]));
        for field in [serial, 7200, 1800, 86400, ttl] {
            rdata.extend_from_slice(&field.to_be_bytes());
        }
        soa.push(TYPE_SOA, ttl, &rdata);
        Zone { origin, nodes, soa, ttl }
    }

    /// Answer `query` from the zone into `out` (cleared first). Malformed queries get FORMERR,
    /// other opcodes NOTIMP, EDNS versions above 0 BADVERS, as RFC 1035 and 6891 say.
    pub fn answer(&self, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> Reply {
        let q = match parse(query) {
            Ok(q) => q,
            Err(reply) => return reply.write(query, out),
        };
        if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
            return Reply::NotOurs;
        }
        let Some(node) = self.nodes.get(q.name()) else {
            return match q.zone_suffix(&self.origin) {
                Some(suffix) => self.reply(&q, RCODE_NXDOMAIN, &[], Some(suffix), transport, out),
                None => Reply::NotOurs,
            };
        };
        let soa = if node.in_zone { q.zone_suffix(&self.origin) } else { None };
        match node.rrset(q.qtype) {
            Some(set) => self.reply(&q, 0, &[(set, QNAME_POINTER)], None, transport, out),
            None => self.reply(&q, 0, &[], soa, transport, out),
        }
    }

    /// Answer `query` with a CNAME from its name to `target` (a name in the zone, as
    /// `Records::autopath` found it) and `target`'s records of the asked type. `NotOurs` when
    /// `target` does not exist (the zone changed meanwhile).
    pub fn answer_alias(&self, query: &[u8], target: &str, transport: Transport, out: &mut Vec<u8>) -> Reply {
        let q = match parse(query) {
            Ok(q) => q,
            Err(reply) => return reply.write(query, out),
        };
        let (Some(wire), true) = (encode_name(target), q.qclass == CLASS_IN || q.qclass == CLASS_ANY) else {
            return Reply::NotOurs;
        };
        let Some(node) = self.nodes.get(wire.as_slice()) else { return Reply::NotOurs };
        let mut cname = RrSet::default();
        cname.push(TYPE_CNAME, self.ttl, &wire);
        // The target's records are owned by the CNAME's RDATA: header, question, then the
        // CNAME's owner pointer (2) and its type, class, TTL and length (10).
        let target_at = u16::try_from(HEADER + q.question.len() + 12).unwrap_or(0);
        match node.rrset(q.qtype) {
            Some(set) => self.reply(&q, 0, &[(&cname, QNAME_POINTER), (set, 0xC000 | target_at)], None, transport, out),
            None => self.reply(&q, 0, &[(&cname, QNAME_POINTER)], None, transport, out),
        }
    }

    /// Write a reply: the answer section's records (RRsets, each owned by the name at its
    /// compression pointer), or the zone's SOA in the authority section at the
    /// question name's `soa_suffix` offset; truncated to the transport's limit.
    fn reply(
        &self,
        q: &Question<'_>,
        rcode: u8,
        answers: &[(&RrSet, u16)],
        soa_suffix: Option<usize>,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Reply {
        let ancount = answers.iter().map(|(set, _)| set.count).sum();
        let nscount = u16::from(soa_suffix.is_some());
        q.header(out, rcode, ancount, nscount);
        for (set, owner) in answers {
            set.write(out, *owner);
        }
        if let Some(suffix) = soa_suffix {
            let owner = u16::try_from(HEADER + suffix).map_or(QNAME_POINTER, |at| 0xC000 | at);
            self.soa.write(out, owner);
        }
        q.opt(out, 0);
        let limit = match transport {
            Transport::Tcp => usize::from(u16::MAX),
            Transport::Udp => {
                q.edns.map_or(CLASSIC_UDP, |p| usize::from(p).clamp(CLASSIC_UDP, usize::from(EDNS_PAYLOAD)))
            }
        };
        if out.len() > limit {
            // Too large: header and question only, with TC set (RFC 2181 §9).
            q.header(out, rcode, 0, 0);
            out[2] |= 0x02;
            q.opt(out, 0);
        }
        Reply::Send
    }
}

/// A parsed query: views into the request, and its name lowercased.
struct Question<'a> {
    id: [u8; 2],
    /// RD and CD, copied into the reply.
    rd: bool,
    cd: bool,
    /// The question as sent (name, type, class): copied into the reply, so the name keeps its
    /// case (resolvers using 0x20 randomisation check it).
    question: &'a [u8],
    name: [u8; 255],
    name_len: usize,
    /// Where each label of `name` starts.
    labels: [u8; 128],
    label_count: usize,
    qtype: u16,
    qclass: u16,
    /// The client's UDP payload size, if it sent an OPT record.
    edns: Option<u16>,
}

impl Question<'_> {
    fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// The offset within the name where the zone `origin` starts, if the name is in it.
    fn zone_suffix(&self, origin: &[u8]) -> Option<usize> {
        let name = self.name();
        self.labels[..self.label_count]
            .iter()
            .map(|&at| usize::from(at))
            .chain(std::iter::once(self.name_len - 1))
            .find(|&at| &name[at..] == origin)
    }

    /// Header and question into `out` (cleared first): QR, AA, RA set, RD and CD copied.
    fn header(&self, out: &mut Vec<u8>, rcode: u8, ancount: u16, nscount: u16) {
        out.clear();
        out.extend_from_slice(&self.id);
        out.push(0x80 | 0x04 | u8::from(self.rd));
        out.push(0x80 | if self.cd { 0x10 } else { 0 } | (rcode & 0x0f));
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ancount.to_be_bytes());
        out.extend_from_slice(&nscount.to_be_bytes());
        out.extend_from_slice(&u16::from(self.edns.is_some()).to_be_bytes());
        out.extend_from_slice(self.question);
    }

    /// The OPT record answering the client's, if it sent one.
    fn opt(&self, out: &mut Vec<u8>, ext_rcode: u8) {
        if self.edns.is_some() {
            write_opt(out, ext_rcode);
        }
    }
}

fn write_opt(out: &mut Vec<u8>, ext_rcode: u8) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, 0, 0, 0, 0]);
}

/// Why a query is not answered normally.
enum Refusal {
    Drop,
    /// A reply with only a header: this response code, and an OPT record with this extended
    /// code when the query had one.
    Header {
        rcode: u8,
        opt: Option<u8>,
    },
}

impl Refusal {
    fn write(self, query: &[u8], out: &mut Vec<u8>) -> Reply {
        let Refusal::Header { rcode, opt } = self else { return Reply::Drop };
        out.clear();
        out.extend_from_slice(&query[..2]);
        out.push(0x80 | (query[2] & 0x79)); // QR, the opcode and RD as asked
        out.push(0x80 | rcode);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&u16::from(opt.is_some()).to_be_bytes());
        if let Some(ext) = opt {
            write_opt(out, ext);
        }
        Reply::Send
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Read a query: one question, no answer or authority records, at most an OPT record in the
/// additional section.
fn parse(query: &[u8]) -> Result<Question<'_>, Refusal> {
    if query.len() < HEADER || query[2] & 0x80 != 0 {
        return Err(Refusal::Drop);
    }
    let formerr = Refusal::Header { rcode: RCODE_FORMERR, opt: None };
    if (query[2] >> 3) & 0x0f != 0 {
        return Err(Refusal::Header { rcode: RCODE_NOTIMP, opt: None });
    }
    let count = |at| be16(query, at).unwrap_or(0);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return Err(formerr);
    }
    let mut q = Question {
        id: [query[0], query[1]],
        rd: query[2] & 0x01 != 0,
        cd: query[3] & 0x10 != 0,
        question: &[],
        name: [0; 255],
        name_len: 0,
        labels: [0; 128],
        label_count: 0,
        qtype: 0,
        qclass: 0,
        edns: None,
    };
    let mut at = HEADER;
    loop {
        let Some(&len) = query.get(at) else { return Err(formerr) };
        if len == 0 {
            break;
        }
        // No compression in a question's name (there is nothing before it to point to), no
        // extended label types, at most 255 bytes.
        let len = usize::from(len);
        if len > 63 || q.name_len + len + 2 > 255 || q.label_count == q.labels.len() {
            return Err(formerr);
        }
        let Some(label) = query.get(at + 1..at + 1 + len) else { return Err(formerr) };
        q.labels[q.label_count] = q.name_len as u8;
        q.label_count += 1;
        q.name[q.name_len] = len as u8;
        for (i, b) in label.iter().enumerate() {
            q.name[q.name_len + 1 + i] = b.to_ascii_lowercase();
        }
        q.name_len += 1 + len;
        at += 1 + len;
    }
    q.name[q.name_len] = 0;
    q.name_len += 1;
    let (Some(qtype), Some(qclass)) = (be16(query, at + 1), be16(query, at + 3)) else { return Err(formerr) };
    q.qtype = qtype;
    q.qclass = qclass;
    let end = at + 5;
    q.question = &query[HEADER..end];
    if count(10) == 1 {
        // The OPT pseudo-record: root owner, type 41, class = payload size, TTL = extended
        // rcode, version, flags; its options (cookies, padding) are not answered.
        let rest = &query[end..];
        if rest.len() < 11 || rest[0] != 0 || be16(rest, 1) != Some(TYPE_OPT) {
            return Err(formerr);
        }
        let rdlen = usize::from(be16(rest, 9).unwrap_or(0));
        if rest.len() != 11 + rdlen {
            return Err(formerr);
        }
        if rest[6] != 0 {
            return Err(Refusal::Header { rcode: 0, opt: Some(EXT_RCODE_BADVERS) });
        }
        q.edns = be16(rest, 3);
    } else if query.len() != end {
        return Err(formerr);
    }
    Ok(q)
}

#[cfg(test)]
mod tests;
