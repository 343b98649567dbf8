//! Service-account tokens (upstream's `serviceaccount` token generator and authenticator):
//! JWTs signed with ES256 by the key in `pki/sa.key`, issued through `serviceaccounts/token`
//! (TokenRequest) for an audience and a lifetime, optionally bound to a pod, and accepted as
//! credentials while they are unexpired, meant for this API, and their service account (and
//! pod) still exist with the uid they were issued for.

use base64::Engine;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// The issuer and default audience, as kube-apiserver's default `--service-account-issuer`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What a token says (upstream's private claims under `kubernetes.io`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub iss: String,
    pub sub: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: Bound,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Bound>,
}

/// An object a token belongs to, by name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub name: String,
    pub uid: String,
}

/// Signs and verifies tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    kid: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenSigner {
    /// From the PKCS#8 (DER) of a P-256 key.
    pub fn new(pkcs8: &[u8]) -> Option<TokenSigner> {
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        Some(TokenSigner { key, kid: b64(digest.as_ref()) })
    }

    pub fn issue(&self, claims: &Claims) -> Option<String> {
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid});
        let signing_input =
            format!("{}.{}", b64(header.to_string().as_bytes()), b64(&serde_json::to_vec(claims).ok()?));
        let rng = ring::rand::SystemRandom::new();
        let signature = self.key.sign(&rng, signing_input.as_bytes()).ok()?;
        Some(format!("{signing_input}.{}", b64(signature.as_ref())))
    }

    /// The claims of a token this signer issued, if its signature holds, it is within its
    /// lifetime at `now` (Unix seconds) and meant for this API. Whether its objects still exist
    /// is the caller's to check.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let mut parts = token.split('.');
        let (header, payload, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let decode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok();
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?).ok()?;
        if header["alg"] != "ES256" || header["kid"] != self.kid {
            return None;
        }
        let public =
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        let signed = &token[..token.len() - sig.len() - 1];
        public.verify(signed.as_bytes(), &decode(sig)?).ok()?;
        let claims: Claims = serde_json::from_slice(&decode(payload)?).ok()?;
        (claims.iss == ISSUER && claims.nbf <= now && now < claims.exp && claims.aud.iter().any(|a| a == ISSUER))
            .then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: i64) -> Claims {
        Claims {
            aud: vec![aud.into()],
            exp,
            iat: 100,
            nbf: 100,
            iss: ISSUER.into(),
            sub: "system:serviceaccount:default:builder".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: Bound { name: "builder".into(), uid: "u1".into() },
                pod: None,
            },
        }
    }

    #[test]
    fn tokens_verify_only_when_signed_here_unexpired_and_for_this_api() {
        let key = rcgen::KeyPair::generate().expect("key");
        let signer = TokenSigner::new(&key.serialize_der()).expect("signer");
        let token = signer.issue(&claims(ISSUER, 200)).expect("token");
        assert_eq!(signer.verify(&token, 150), Some(claims(ISSUER, 200)));
        assert_eq!(signer.verify(&token, 200), None, "expired");
        assert_eq!(signer.verify(&token, 50), None, "not yet valid");
        let elsewhere = signer.issue(&claims("vault", 200)).expect("token");
        assert_eq!(signer.verify(&elsewhere, 150), None, "another audience");
        let other = TokenSigner::new(&rcgen::KeyPair::generate().expect("key").serialize_der()).expect("signer");
        assert_eq!(other.verify(&token, 150), None, "another key");
        let mut forged = token.clone();
        forged.replace_range(token.len() - 3.., "AAA");
        assert_eq!(signer.verify(&forged, 150), None, "a changed signature");
        assert_eq!(signer.verify("a.b", 150), None);
        assert_eq!(signer.verify("", 150), None);
    }
}
