//! The hashes upstream names objects by: FNV-1 for ControllerRevisions, FNV-1a for a
//! Deployment's `pod-template-hash`, both printed in decimal and mapped through the "safe"
//! alphabet (no vowels, no confusable digits) so a hash never spells a word.

/// FNV-1 (32-bit): upstream's `hashutil` for revisions.
pub fn fnv1_32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(*b);
    }
    h
}

/// FNV-1a (32-bit): upstream's `ComputeHash` for pod templates.
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The decimal form of `h`, each digit mapped into the safe alphabet (`SafeEncodeString`).
pub fn safe_encode(h: u32) -> String {
    h.to_string().bytes().map(|c| SAFE[usize::from(c) % SAFE.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // The FNV reference values for "a".
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(safe_encode(0), "4");
        assert!(safe_encode(u32::MAX).bytes().all(|c| SAFE.contains(&c)));
    }
}
