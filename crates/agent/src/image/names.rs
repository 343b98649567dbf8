//! Image reference normalisation, as container runtimes do it: `busybox` is
//! `docker.io/library/busybox:latest`; a first component with a dot, a colon or `localhost` is a
//! registry host; a digest reference keeps its digest.

/// The canonical form of an image reference.
pub fn normalize(reference: &str) -> String {
    let reference = reference.trim();
    let (first, rest) = match reference.split_once('/') {
        Some((first, rest)) => (Some(first), rest),
        None => (None, reference),
    };
    let has_registry = first.is_some_and(|f| f.contains('.') || f.contains(':') || f == "localhost");
    let (registry, path) = match (has_registry, first) {
        (true, Some(host)) => (host.to_string(), rest.to_string()),
        (false, Some(first)) => ("docker.io".to_string(), format!("{first}/{rest}")),
        (_, None) => ("docker.io".to_string(), rest.to_string()),
    };
    let path = if registry == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
    let last = path.rsplit('/').next().unwrap_or(&path);
    let tagged = last.contains(':') || path.contains('@');
    if tagged { format!("{registry}/{path}") } else { format!("{registry}/{path}:latest") }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn references_normalise_like_runtimes_do() {
        for (given, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.35", "docker.io/library/busybox:1.35"),
            ("nginx/nginx:1", "docker.io/nginx/nginx:1"),
            ("docker.io/library/redis:7", "docker.io/library/redis:7"),
            ("localhost/busybox:1.35", "localhost/busybox:1.35"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
            ("registry.example/team/app@sha256:abc", "registry.example/team/app@sha256:abc"),
        ] {
            assert_eq!(normalize(given), want, "{given}");
        }
    }
}
