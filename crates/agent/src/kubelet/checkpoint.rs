//! What the kubelet must remember of a pod that the runtime does not: per container, the image
//! its latest run was started from, whether that run's startup probe succeeded, and the
//! crash-loop back-off. Kept in `<pod dir>/kubelet.json`, rewritten (write, then rename) when
//! it changes, read back when a restarted server picks the pod up; restart counts and exit
//! records come from the runtime's own state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use logic::kubelet::BackOff;
use serde::{Deserialize, Serialize};

const FILE: &str = "kubelet.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The run these facts are about.
    pub attempt: u32,
    pub image: String,
    #[serde(rename = "imageID")]
    pub image_id: String,
    /// The run's startup probe succeeded (it is not probed again after a restart).
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub backoff_seconds: i64,
    #[serde(default)]
    pub backoff_updated: Option<Timestamp>,
}

impl Container {
    pub fn backoff(&self) -> BackOff {
        BackOff { delay: SignedDuration::from_secs(self.backoff_seconds), last_update: self.backoff_updated }
    }

    pub fn set_backoff(&mut self, backoff: BackOff) {
        self.backoff_seconds = backoff.delay.as_secs();
        self.backoff_updated = backoff.last_update;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub containers: BTreeMap<String, Container>,
}

fn path(pod_dir: &Path) -> PathBuf {
    pod_dir.join(FILE)
}

impl Checkpoint {
    /// The pod's checkpoint; empty when there is none (or it cannot be read: the kubelet then
    /// decides from the runtime's state alone, as upstream's does after a restart).
    pub fn read(pod_dir: &Path) -> Checkpoint {
        std::fs::read(path(pod_dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn write(&self, pod_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(pod_dir)?;
        let tmp = pod_dir.join(format!("{FILE}.partial"));
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path(pod_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Checkpoint::read(dir.path()), Checkpoint::default(), "none yet");
        let mut c = Container { attempt: 3, image: "busybox".into(), started: true, ..Default::default() };
        let backoff = BackOff { delay: SignedDuration::from_secs(40), last_update: Some(Timestamp::UNIX_EPOCH) };
        c.set_backoff(backoff);
        let cp = Checkpoint { containers: [("app".to_string(), c)].into() };
        cp.write(dir.path()).expect("write");
        let back = Checkpoint::read(dir.path());
        assert_eq!(back, cp);
        assert_eq!(back.containers["app"].backoff(), backoff);
    }
}
