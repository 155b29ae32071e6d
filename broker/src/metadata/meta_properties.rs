//! `meta.properties` in every log directory: the cluster id and node id the data belongs to, as
//! Kafka writes it. A directory from another node or cluster is refused at startup.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::properties::parse_properties;

/// File name in each log directory.
pub const FILE_NAME: &str = "meta.properties";

/// A log directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    /// IO failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is unreadable or incomplete.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory belongs to another node or cluster.
    #[error("{}: {reason}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

/// Reads or creates `meta.properties` in every directory and returns the cluster id. `new_id` is
/// called once if no directory has one yet.
pub fn ensure(
    dirs: &[PathBuf],
    node_id: i32,
    new_id: impl FnOnce() -> String,
) -> Result<String, MetaPropertiesError> {
    let mut cluster_id: Option<(String, PathBuf)> = None;
    let mut missing = Vec::new();
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            missing.push(dir.clone());
            continue;
        }
        let text = fs::read_to_string(&path).map_err(|source| MetaPropertiesError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        let props = parse_properties(&text).map_err(|e| MetaPropertiesError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let get = |key: &str| {
            props
                .get(key)
                .cloned()
                .ok_or_else(|| MetaPropertiesError::Malformed {
                    path: path.clone(),
                    reason: format!("no {key}"),
                })
        };
        let stored_node: i32 =
            get("node.id")?
                .trim()
                .parse()
                .map_err(|_| MetaPropertiesError::Malformed {
                    path: path.clone(),
                    reason: "node.id is not a number".into(),
                })?;
        if stored_node != node_id {
            return Err(MetaPropertiesError::Mismatch {
                path,
                reason: format!(
                    "the directory belongs to node.id {stored_node}, but this node is node.id {node_id}"
                ),
            });
        }
        let id = get("cluster.id")?;
        match &cluster_id {
            Some((existing, other)) if *existing != id => {
                return Err(MetaPropertiesError::Mismatch {
                    path,
                    reason: format!(
                        "cluster.id {id} differs from {existing} in {}",
                        other.display()
                    ),
                });
            }
            Some(_) => {}
            None => cluster_id = Some((id, path)),
        }
    }
    let cluster_id = cluster_id.map_or_else(new_id, |(id, _)| id);
    for dir in missing {
        write(&dir, &cluster_id, node_id)?;
    }
    Ok(cluster_id)
}

fn write(dir: &Path, cluster_id: &str, node_id: i32) -> Result<(), MetaPropertiesError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| MetaPropertiesError::Io { op, path, source }
    };
    fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let path = dir.join(FILE_NAME);
    let mut file = fs::File::create(&tmp).map_err(io("create", &tmp))?;
    write!(
        file,
        "#\n#Written by Shoal\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
    )
    .and_then(|()| file.sync_all())
    .map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("rename onto", &path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

/// A new cluster id in Kafka's format: 16 random bytes as unpadded URL-safe base64 (22 chars).
pub fn random_cluster_id() -> String {
    base64_url(uuid::Uuid::new_v4().as_bytes())
}

/// Unpadded URL-safe base64, the text form of Kafka UUIDs.
pub fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(random_cluster_id().len(), 22);
    }

    #[test]
    fn creates_then_checks_directories() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let id = ensure(&dirs, 1, || "cluster-x".into()).unwrap();
        assert_eq!(id, "cluster-x");
        assert_eq!(ensure(&dirs, 1, unreachable_id).unwrap(), "cluster-x");
        assert!(matches!(
            ensure(&dirs, 2, || "y".into()),
            Err(MetaPropertiesError::Mismatch { .. })
        ));

        // A new, empty directory joins the existing cluster id.
        let c = tempfile::tempdir().unwrap();
        let dirs3 = vec![dirs[0].clone(), c.path().to_path_buf()];
        assert_eq!(ensure(&dirs3, 1, || "z".into()).unwrap(), "cluster-x");
    }

    fn unreachable_id() -> String {
        "should-not-be-used".into()
    }
}
